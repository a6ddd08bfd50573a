/**
 * Model metadata from weight-file headers (GGUF, safetensors) plus an optional Hugging Face `config.json`: format,
 * architecture, parameter count and size, quantization, precision, context length. Used by `modelfile generate` and
 * by the Docker model-runner config writer. Only headers are read; tensor data never is.
 *
 * Rules:
 * - Shards (`<name>-00001-of-00004.gguf`, `model-00001-of-00002.safetensors`) form one model: parameter counts are
 *   summed over the shards, metadata comes from the lowest-numbered shard present.
 * - GGUF: several separate GGUF models in one set (quantization variants) are reported together: fields on which
 *   they agree are kept, differing quantizations are listed sorted and comma-separated, differing parameter counts
 *   are dropped. Multimodal projectors (`*mmproj*`) are ignored when another GGUF is present.
 * - Safetensors: every safetensors file or shard set counts towards the model (diffusers-style components add up),
 *   except a set whose parameter count and dtype mix repeat an earlier one (`consolidated.safetensors` next to
 *   HF shards), which is counted once.
 * - Precision (safetensors): dtypes mapped to names (BF16 → bfloat16, F8_E4M3 → float8_e4m3, …); several distinct
 *   dtypes are joined with `,`, the dtype holding the most parameters first (ties by name). Parameters, not tensor
 *   counts, decide the order so that the small scale/norm tensors of a quantized checkpoint do not come first.
 */

import path from 'node:path';
import { GGUF_VALUE_TYPES, readGgufHeader, type GgufHeader } from './gguf.js';
import { readSafetensorsHeader, type SafetensorsHeader } from './safetensors.js';

export type WeightsFormat = 'gguf' | 'safetensors' | 'dduf' | 'onnx' | 'pytorch' | 'tflite' | 'keras';

export interface WeightsMetadata {
  format?: WeightsFormat;
  /** GGUF `general.architecture` (e.g. `llama`, `qwen2`); safetensors `__metadata__.architecture` if present. */
  architecture?: string;
  /** `config.json` `model_type`, else GGUF `general.architecture`. */
  family?: string;
  /** GGUF `general.name`. */
  name?: string;
  /** Sum over tensors of the product of their shape. */
  paramCount?: number;
  /** `paramCount` in short form: `494M`, `1.5B`, `8B`. */
  paramSize?: string;
  /** GGUF file type name (`Q4_K_M`), or `config.json` `quantization_config.quant_method` for safetensors. */
  quantization?: string;
  /** Safetensors dtypes as names (`bfloat16`), or float32/float16/bfloat16 for unquantized GGUF files. */
  precision?: string;
  /** Raw safetensors dtypes (`BF16`), most parameters first. */
  dtypes?: string[];
  /** GGUF `<arch>.context_length`, else `config.json` `max_position_embeddings` and friends. */
  contextLength?: number;
  /** GGUF header KVs as strings (Docker `config.gguf` rules): numbers formatted, arrays joined by ", ", arrays over 50 entries dropped. */
  ggufKv?: Record<string, string>;
  /** Safetensors `__metadata__` of the first file plus `tensor_count` (Docker `config.safetensors`). */
  safetensorsKv?: Record<string, string>;
  /** Weight files whose headers were used, in model/shard order. */
  files: string[];
  /** Files that could not be read, ambiguous sets, and similar non-fatal findings. */
  warnings: string[];
}

export interface InferOptions {
  /** Parsed Hugging Face config.json (optionally merged with generation_config.json). */
  configJson?: object;
  /** Throw on an unreadable or corrupt weight header instead of recording a warning. */
  strict?: boolean;
}

/** llama.cpp `enum llama_ftype` (include/llama.h) → name; removed values kept so old files still read. */
export const GGUF_FILE_TYPES: Readonly<Record<number, string>> = {
  0: 'F32',
  1: 'F16',
  2: 'Q4_0',
  3: 'Q4_1',
  4: 'Q4_1_SOME_F16',
  5: 'Q4_2',
  6: 'Q4_3',
  7: 'Q8_0',
  8: 'Q5_0',
  9: 'Q5_1',
  10: 'Q2_K',
  11: 'Q3_K_S',
  12: 'Q3_K_M',
  13: 'Q3_K_L',
  14: 'Q4_K_S',
  15: 'Q4_K_M',
  16: 'Q5_K_S',
  17: 'Q5_K_M',
  18: 'Q6_K',
  19: 'IQ2_XXS',
  20: 'IQ2_XS',
  21: 'Q2_K_S',
  22: 'IQ3_XS',
  23: 'IQ3_XXS',
  24: 'IQ1_S',
  25: 'IQ4_NL',
  26: 'IQ3_S',
  27: 'IQ3_M',
  28: 'IQ2_S',
  29: 'IQ2_M',
  30: 'IQ4_XS',
  31: 'IQ1_M',
  32: 'BF16',
  33: 'Q4_0_4_4',
  34: 'Q4_0_4_8',
  35: 'Q4_0_8_8',
  36: 'TQ1_0',
  37: 'TQ2_0',
  38: 'MXFP4_MOE',
  39: 'NVFP4',
  40: 'Q1_0',
};

export function ggufFileTypeName(fileType: unknown): string | undefined {
  if (typeof fileType !== 'number' || !Number.isInteger(fileType)) return undefined;
  // 1024 = LLAMA_FTYPE_GUESSED: "not specified in the model file".
  return GGUF_FILE_TYPES[fileType];
}

const GGUF_PRECISION: Record<string, string> = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' };

/** Safetensors dtype (see safetensors `Dtype`) → precision name. Unknown dtypes are lower-cased. */
export const SAFETENSORS_DTYPES: Readonly<Record<string, string>> = {
  BOOL: 'bool',
  U8: 'uint8',
  I8: 'int8',
  U16: 'uint16',
  I16: 'int16',
  U32: 'uint32',
  I32: 'int32',
  U64: 'uint64',
  I64: 'int64',
  F16: 'float16',
  BF16: 'bfloat16',
  F32: 'float32',
  F64: 'float64',
  F8_E4M3: 'float8_e4m3',
  F8_E5M2: 'float8_e5m2',
  F8_E8M0: 'float8_e8m0',
  F6_E2M3: 'float6_e2m3',
  F6_E3M2: 'float6_e3m2',
  F4: 'float4_e2m1',
  C64: 'complex64',
};

export function dtypePrecision(dtype: string): string {
  return SAFETENSORS_DTYPES[dtype.toUpperCase()] ?? dtype.toLowerCase();
}

const SCALES: ReadonlyArray<readonly [number, string]> = [
  [1e12, 'T'],
  [1e9, 'B'],
  [1e6, 'M'],
  [1e3, 'K'],
];

/**
 * Short parameter size: the largest SI scale (K, M, B, T) not above the count, at most one decimal, no trailing
 * `.0`: 494_000_000 → `494M`, 8_030_000_000 → `8B`, 1_543_000_000 → `1.5B`, 7_000 → `7K`, 999_960_000 → `1B`;
 * counts below 1000 are printed as is.
 */
export function formatParamSize(count: number): string {
  if (!Number.isFinite(count) || count < 0) throw new RangeError(`invalid parameter count ${count}`);
  for (let i = 0; i < SCALES.length; i++) {
    const [div, unit] = SCALES[i];
    if (count < div) continue;
    const v = Math.round((count / div) * 10) / 10;
    if (v >= 1000 && i > 0) return oneDecimal(Math.round((count / SCALES[i - 1][0]) * 10) / 10) + SCALES[i - 1][1];
    return oneDecimal(v) + unit;
  }
  return String(Math.round(count));
}

function oneDecimal(v: number): string {
  return Number.isInteger(v) ? String(v) : v.toFixed(1);
}

export interface ShardName {
  prefix: string;
  index: number;
  total: number;
  ext: string;
}

/** `qwen2-q4_k_m-00001-of-00002.gguf` → {prefix: 'qwen2-q4_k_m', index: 1, total: 2, ext: 'gguf'}. */
export function parseShardName(base: string): ShardName | undefined {
  const m = /^(.+)-(\d+)-of-(\d+)\.([A-Za-z0-9_]+)$/.exec(base);
  if (!m) return undefined;
  const index = Number(m[2]);
  const total = Number(m[3]);
  if (index < 1 || total < 1 || index > total) return undefined;
  return { prefix: m[1], index, total, ext: m[4].toLowerCase() };
}

/** Format implied by a weight file's name, if any. */
export function weightsFormatOf(file: string): WeightsFormat | undefined {
  const base = path.basename(file).toLowerCase();
  if (base.endsWith('.gguf')) return 'gguf';
  if (base.endsWith('.safetensors')) return 'safetensors';
  if (base.endsWith('.dduf')) return 'dduf';
  if (base.endsWith('.onnx')) return 'onnx';
  if (base.endsWith('.pt') || base.endsWith('.pth') || (base.startsWith('pytorch_model') && base.endsWith('.bin'))) return 'pytorch';
  if (base.endsWith('.tflite')) return 'tflite';
  if (base.endsWith('.keras')) return 'keras';
  return undefined;
}

/** When several formats are present, the first one here is the model's format (safetensors over pytorch .bin copies). */
const FORMAT_PRIORITY: readonly WeightsFormat[] = ['safetensors', 'gguf', 'dduf', 'onnx', 'pytorch', 'tflite', 'keras'];

function cmpBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/** Group files into models: shard sets (same directory, prefix, total and extension) and single files. */
export function groupShards(files: string[]): string[][] {
  const groups = new Map<string, Array<{ file: string; index: number }>>();
  for (const file of [...files].sort(cmpBytes)) {
    const s = parseShardName(path.basename(file));
    const key = s ? `${path.dirname(file)}\0${s.prefix}\0${s.total}\0${s.ext}` : `\0single\0${file}`;
    const g = groups.get(key) ?? [];
    g.push({ file, index: s?.index ?? 0 });
    groups.set(key, g);
  }
  return [...groups.values()].map((g) => g.sort((a, b) => a.index - b.index).map((e) => e.file));
}

function product(shape: readonly number[]): number {
  let p = 1;
  for (const d of shape) p *= d;
  return p;
}

/** Shortest decimal form that reads back as the same float32. */
function float32String(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  for (let p = 1; p <= 9; p++) {
    const s = Number(v.toPrecision(p));
    if (Math.fround(s) === v) return String(s);
  }
  return String(v);
}

function ggufScalarString(v: unknown, type: number): string {
  if (typeof v === 'number' && type === GGUF_VALUE_TYPES.FLOAT32) return float32String(v);
  return String(v);
}

/** Docker-style string map of GGUF KVs: numbers formatted, arrays joined by ", ", arrays over `maxArray` entries dropped. */
export function ggufKvStrings(header: Pick<GgufHeader, 'kv' | 'kvTypes'>, maxArray = 50): Record<string, string> {
  const out: Record<string, string> = {};
  for (const key of Object.keys(header.kv).sort(cmpBytes)) {
    const v = header.kv[key];
    if (Array.isArray(v)) {
      if (v.length > maxArray) continue;
      // Item types are not kept per array; floats in short arrays are rare and print fine as doubles.
      out[key] = v.map((x) => ggufScalarString(x, -1)).join(', ');
    } else {
      out[key] = ggufScalarString(v, header.kvTypes[key]);
    }
  }
  return out;
}

/** HF config.json keys that hold the maximum context, in llama.cpp convert_hf_to_gguf.py priority order. */
const CONTEXT_KEYS = ['max_position_embeddings', 'n_ctx', 'n_positions', 'max_length', 'max_sequence_length', 'model_max_length'];

function contextFromConfig(cfg: Record<string, unknown>): number | undefined {
  const candidates = [cfg, cfg.text_config, cfg.llm_config, cfg.language_config];
  for (const c of candidates) {
    if (typeof c !== 'object' || c === null) continue;
    for (const k of CONTEXT_KEYS) {
      const v = (c as Record<string, unknown>)[k];
      if (typeof v === 'number' && Number.isSafeInteger(v) && v > 0 && v <= 0x7fffffff) return v;
    }
  }
  return undefined;
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

interface GgufModel {
  files: string[];
  architecture?: string;
  name?: string;
  quantization?: string;
  contextLength?: number;
  paramCount: number;
  kv: Record<string, string>;
}

async function readGgufModel(files: string[], warnings: string[]): Promise<GgufModel> {
  const first = await readGgufHeader(files[0], { keepArraysUpTo: 50 });
  let paramCount = 0;
  for (const t of first.tensorInfos ?? []) paramCount += product(t.shape);
  for (const f of files.slice(1)) {
    const h = await readGgufHeader(f, { keepArraysUpTo: 0 });
    for (const t of h.tensorInfos ?? []) paramCount += product(t.shape);
  }
  const s = parseShardName(path.basename(files[0]));
  if (s && (s.index !== 1 || files.length !== s.total)) {
    warnings.push(`incomplete shard set for ${s.prefix}: found ${files.length} of ${s.total} shards; parameter count covers only those`);
  }
  const architecture = str(first.kv['general.architecture']);
  const ctx = architecture ? first.kv[`${architecture}.context_length`] : undefined;
  return {
    files,
    architecture,
    name: str(first.kv['general.name']),
    quantization: ggufFileTypeName(first.kv['general.file_type']),
    contextLength: typeof ctx === 'number' && Number.isSafeInteger(ctx) && ctx > 0 ? ctx : undefined,
    paramCount,
    kv: ggufKvStrings(first),
  };
}

interface SafetensorsModel {
  files: string[];
  paramCount: number;
  /** dtype → parameters */
  dtypeParams: Map<string, number>;
  tensorCount: number;
  metadata: Record<string, string>;
}

async function readSafetensorsModel(files: string[], warnings: string[]): Promise<SafetensorsModel> {
  const dtypeParams = new Map<string, number>();
  let paramCount = 0;
  let tensorCount = 0;
  let metadata: Record<string, string> = {};
  for (const [i, f] of files.entries()) {
    const h: SafetensorsHeader = await readSafetensorsHeader(f);
    if (i === 0) metadata = h.metadata;
    for (const t of Object.values(h.tensors)) {
      const n = product(t.shape);
      paramCount += n;
      tensorCount++;
      dtypeParams.set(t.dtype, (dtypeParams.get(t.dtype) ?? 0) + n);
    }
  }
  const s = parseShardName(path.basename(files[0]));
  if (s && (s.index !== 1 || files.length !== s.total)) {
    warnings.push(`incomplete shard set for ${s.prefix}: found ${files.length} of ${s.total} shards; parameter count covers only those`);
  }
  return { files, paramCount, dtypeParams, tensorCount, metadata };
}

function describe(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

async function inferGguf(files: string[], meta: WeightsMetadata, opts: InferOptions): Promise<void> {
  let candidates = files;
  const nonProjector = files.filter((f) => !/mmproj/i.test(path.basename(f)));
  if (nonProjector.length > 0) candidates = nonProjector;
  const models: GgufModel[] = [];
  for (const group of groupShards(candidates)) {
    try {
      models.push(await readGgufModel(group, meta.warnings));
    } catch (e) {
      if (opts.strict) throw e;
      meta.warnings.push(`cannot read GGUF header of ${path.basename(group[0])}: ${describe(e)}`);
    }
  }
  if (models.length === 0) return;
  const agree = <T>(pick: (m: GgufModel) => T | undefined): T | undefined => {
    const vals = models.map(pick);
    return vals.every((v) => v === vals[0]) ? vals[0] : undefined;
  };
  if (models.length > 1) {
    meta.warnings.push(`found ${models.length} separate GGUF models (${models.map((m) => path.basename(m.files[0])).join(', ')}); reporting them together`);
  }
  meta.files = models.flatMap((m) => m.files);
  meta.architecture = agree((m) => m.architecture);
  meta.family = meta.architecture;
  meta.name = agree((m) => m.name);
  meta.contextLength = agree((m) => m.contextLength);
  const count = agree((m) => m.paramCount);
  if (count !== undefined && count > 0) {
    meta.paramCount = count;
    meta.paramSize = formatParamSize(count);
  }
  const quants = [...new Set(models.map((m) => m.quantization).filter((q): q is string => q !== undefined))].sort(cmpBytes);
  if (quants.length > 0) meta.quantization = quants.join(',');
  if (quants.length === 1 && GGUF_PRECISION[quants[0]]) meta.precision = GGUF_PRECISION[quants[0]];
  meta.ggufKv = models[0].kv;
}

async function inferSafetensors(files: string[], meta: WeightsMetadata, opts: InferOptions): Promise<void> {
  const models: SafetensorsModel[] = [];
  for (const group of groupShards(files)) {
    try {
      models.push(await readSafetensorsModel(group, meta.warnings));
    } catch (e) {
      if (opts.strict) throw e;
      meta.warnings.push(`cannot read safetensors header of ${path.basename(group[0])}: ${describe(e)}`);
    }
  }
  if (models.length === 0) return;
  const seen = new Map<string, SafetensorsModel>();
  const counted: SafetensorsModel[] = [];
  for (const m of models) {
    const sig = `${m.paramCount}:${[...m.dtypeParams.entries()].sort((a, b) => cmpBytes(a[0], b[0])).map(([d, n]) => `${d}=${n}`).join(',')}`;
    const prev = seen.get(sig);
    if (prev) {
      meta.warnings.push(`${path.basename(m.files[0])} repeats the parameters of ${path.basename(prev.files[0])}; counted once`);
      continue;
    }
    seen.set(sig, m);
    counted.push(m);
  }
  meta.files = counted.flatMap((m) => m.files);
  const dtypeParams = new Map<string, number>();
  let paramCount = 0;
  let tensorCount = 0;
  for (const m of counted) {
    paramCount += m.paramCount;
    tensorCount += m.tensorCount;
    for (const [d, n] of m.dtypeParams) dtypeParams.set(d, (dtypeParams.get(d) ?? 0) + n);
  }
  if (paramCount > 0) {
    meta.paramCount = paramCount;
    meta.paramSize = formatParamSize(paramCount);
  }
  const dtypes = [...dtypeParams.entries()].sort((a, b) => b[1] - a[1] || cmpBytes(a[0], b[0])).map(([d]) => d);
  if (dtypes.length > 0) {
    meta.dtypes = dtypes;
    meta.precision = [...new Set(dtypes.map(dtypePrecision))].join(',');
  }
  const arch = str(counted[0].metadata.architecture);
  if (arch) meta.architecture = arch;
  meta.safetensorsKv = { ...counted[0].metadata, tensor_count: String(tensorCount) };
}

/**
 * Infer metadata from the weight files of one model (absolute paths; other files are ignored). Unreadable or
 * corrupt headers become warnings unless `strict` is set (then the reader's E_GGUF_INVALID / E_SAFETENSORS_INVALID
 * error is thrown).
 */
export async function inferWeightsMetadata(files: string[], opts: InferOptions = {}): Promise<WeightsMetadata> {
  const meta: WeightsMetadata = { files: [], warnings: [] };
  const byFormat = new Map<WeightsFormat, string[]>();
  for (const f of files) {
    const fmt = weightsFormatOf(f);
    if (!fmt) continue;
    const list = byFormat.get(fmt) ?? [];
    list.push(f);
    byFormat.set(fmt, list);
  }
  meta.format = FORMAT_PRIORITY.find((f) => byFormat.has(f));
  if (meta.format === 'gguf') await inferGguf(byFormat.get('gguf') ?? [], meta, opts);
  else if (meta.format === 'safetensors') await inferSafetensors(byFormat.get('safetensors') ?? [], meta, opts);
  else if (meta.format) meta.files = [...(byFormat.get(meta.format) ?? [])].sort(cmpBytes);

  const cfg = opts.configJson as Record<string, unknown> | undefined;
  if (cfg && typeof cfg === 'object') {
    const modelType = str(cfg.model_type);
    if (modelType) meta.family = modelType;
    meta.contextLength ??= contextFromConfig(cfg);
    if (meta.format !== 'gguf' && meta.quantization === undefined) {
      const qc = cfg.quantization_config as Record<string, unknown> | undefined;
      const method = qc && typeof qc === 'object' ? str(qc.quant_method) : undefined;
      if (method) meta.quantization = method;
    }
    if (meta.precision === undefined) {
      const dt = str(cfg.torch_dtype) ?? str(cfg.dtype);
      if (dt) meta.precision = dt;
    }
  }
  return meta;
}
