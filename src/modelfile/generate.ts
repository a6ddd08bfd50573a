/**
 * `modelfile generate` (modelpack.md §7): walk a model directory, classify every file (classify.ts), infer metadata
 * from config.json / generation_config.json and the weight headers, and render a Modelfile in modctl's generator
 * layout. Differences from modctl, on purpose:
 * - no `# Generated at` line unless `timestamp: true`, so the same directory always gives the same bytes;
 * - the comment of each single-value field names where the value came from (flag, config.json, weight header);
 * - paths containing glob characters are escaped so the build reads them as literal paths;
 * - metadata modctl leaves empty (FORMAT, PARAMSIZE, QUANTIZATION, ARCH for GGUF) is filled from weight headers
 *   (`infer: false` turns that off); explicit options always win, then config.json (modctl's rules), then weights.
 * The rendered text is parsed back with parseModelfile, so `spec` is exactly what a build will read.
 */

import { promises as fsp, type Dirent, type Stats } from 'node:fs';
import path from 'node:path';
import picomatch from 'picomatch';
import { ModctlError, NotFoundError } from '../errors.js';
import { inferWeightsMetadata, type WeightsMetadata } from '../weights/infer.js';
import type { ModelfileSpec } from './ast.js';
import {
  CODE_PATTERNS,
  CONFIG_PATTERNS,
  DOC_PATTERNS,
  MODEL_PATTERNS,
  classifyFile,
  isSkippedName,
  type GeneratedKind,
} from './classify.js';
import { parseModelfile } from './parser.js';
import { quoteValue } from './render.js';

/** Walk limits (SI units, like modctl): one file, number of files, total bytes. */
export interface GenerateLimits {
  maxFileSize: number;
  maxFiles: number;
  maxTotalSize: number;
}

export const GENERATE_LIMITS: Readonly<GenerateLimits> = {
  maxFileSize: 128e9,
  maxFiles: 2048,
  maxTotalSize: 8e12,
};

export interface GenerateOptions {
  name?: string;
  arch?: string;
  family?: string;
  format?: string;
  paramSize?: string;
  precision?: string;
  quantization?: string;
  /** Doublestar globs against `/`-separated relative paths; a matching directory drops its whole subtree. */
  exclude?: string[];
  /** Doublestar globs that rescue entries the walk would skip (hidden files, `__pycache__`, `*.pyc`, …). */
  include?: string[];
  /** Start with `# Generated at <RFC 3339>` like modctl (default false). */
  timestamp?: boolean;
  /** Clock for the timestamp line (tests). */
  now?: Date;
  /** Fill FORMAT, PARAMSIZE, QUANTIZATION, PRECISION, ARCH from weight headers (default true). */
  infer?: boolean;
  /** Override walk limits (tests). */
  limits?: Partial<GenerateLimits>;
}

export interface GeneratedFile {
  /** Relative to the directory, `/`-separated. */
  path: string;
  kind: GeneratedKind;
  size: number;
}

export interface GenerateResult {
  text: string;
  spec: ModelfileSpec;
  /** Sorted by kind (CONFIG, MODEL, CODE, DOC), then bytewise by path. */
  files: GeneratedFile[];
  warnings: string[];
  /** What the weight headers said (undefined with `infer: false` or without weight files). */
  weights?: WeightsMetadata;
}

export const NO_MODEL_MESSAGE = 'no model/code/dataset found - you have to create the Modelfile by yourself';

const KIND_ORDER: readonly GeneratedKind[] = ['config', 'model', 'code', 'doc'];
/** Config files bigger than this are not parsed for metadata (Docker model-runner uses the same cap). */
const MAX_CONFIG_JSON_BYTES = 100 * 1024 * 1024;

function cmpBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

function normalizeGlob(p: string): string {
  return p.replace(/\\/g, '/').replace(/^(\.\/)+/, '').replace(/\/+$/, '');
}

interface Matcher {
  test(rel: string): boolean;
  /** Could a pattern match something at or below directory `rel`? */
  mayMatchUnder(rel: string): boolean;
}

function matcher(patterns: string[] | undefined): Matcher | undefined {
  const list = (patterns ?? []).map(normalizeGlob).filter((p) => p !== '');
  if (list.length === 0) return undefined;
  const tests = list.map((p) => picomatch(p, { dot: true }));
  const bases = list.map((p) => picomatch.scan(p).base);
  return {
    test: (rel) => tests.some((t) => t(rel)),
    mayMatchUnder: (rel) =>
      bases.some((b) => b === '' || b === rel || b.startsWith(rel + '/') || rel.startsWith(b + '/')),
  };
}

interface WalkedFile {
  rel: string;
  abs: string;
  size: number;
}

function workspaceError(code: string, message: string, cause?: unknown, hint?: string): ModctlError {
  return new ModctlError(code, message, { cause, hint });
}

async function walk(root: string, opts: GenerateOptions, limits: GenerateLimits, warnings: string[]): Promise<WalkedFile[]> {
  const exclude = matcher(opts.exclude);
  const include = matcher(opts.include);
  const out: WalkedFile[] = [];
  let total = 0;

  const readDir = async (abs: string, rel: string): Promise<Dirent[]> => {
    try {
      return await fsp.readdir(abs, { withFileTypes: true });
    } catch (e) {
      throw workspaceError('E_WORKSPACE_UNREADABLE', `cannot read directory ${rel === '' ? root : rel}: ${(e as Error).message}`, e);
    }
  };

  const addFile = (rel: string, abs: string, size: number) => {
    if (size > limits.maxFileSize) {
      throw workspaceError('E_WORKSPACE_LIMIT', `file ${rel} is ${size} bytes, over the ${limits.maxFileSize}-byte limit for one file`, undefined, 'exclude it with --exclude, or package it separately');
    }
    if (out.length + 1 > limits.maxFiles) {
      throw workspaceError('E_WORKSPACE_LIMIT', `the directory holds more than ${limits.maxFiles} files`, undefined, 'exclude what is not part of the model with --exclude');
    }
    total += size;
    if (total > limits.maxTotalSize) {
      throw workspaceError('E_WORKSPACE_LIMIT', `the files add up to more than ${limits.maxTotalSize} bytes`, undefined, 'exclude what is not part of the model with --exclude');
    }
    out.push({ rel, abs, size });
  };

  const visit = async (dirAbs: string, dirRel: string, rescueOnly: boolean, entries?: Dirent[]): Promise<void> => {
    const list = (entries ?? (await readDir(dirAbs, dirRel))).sort((a, b) => cmpBytes(a.name, b.name));
    for (const ent of list) {
      const rel = dirRel === '' ? ent.name : `${dirRel}/${ent.name}`;
      const abs = path.join(dirAbs, ent.name);
      if (exclude?.test(rel)) continue;
      const skipped = rescueOnly || isSkippedName(ent.name);
      if (ent.isDirectory()) {
        if (!skipped) await visit(abs, rel, false);
        else if (include?.mayMatchUnder(rel)) await visit(abs, rel, true);
        continue;
      }
      if (skipped && !include?.test(rel)) continue;
      let st: Stats;
      if (ent.isSymbolicLink()) {
        try {
          st = await fsp.stat(abs);
        } catch {
          warnings.push(`${rel} is a dangling symlink; left out`);
          continue;
        }
        if (st.isDirectory()) {
          warnings.push(`${rel} is a symlink to a directory; not followed`);
          continue;
        }
        const real = await fsp.realpath(abs);
        const inside = path.relative(root, real);
        if (inside.startsWith('..') || path.isAbsolute(inside)) {
          warnings.push(`${rel} is a symlink to ${real}, outside the directory; the build will refuse it unless the target is copied in`);
        }
      } else {
        st = await fsp.lstat(abs);
      }
      if (!st.isFile()) {
        warnings.push(`${rel} is not a regular file; left out`);
        continue;
      }
      addFile(rel, abs, st.size);
    }
  };

  const top = await readDir(root, '');
  if (top.length === 0) throw workspaceError('E_WORKSPACE_EMPTY', `directory ${root} is empty`);
  await visit(root, '', false, top);
  return out;
}

/** Escape Go/picomatch glob syntax so a path with `*?[]{}` reads as itself (the build globs such paths). */
export function escapeGlobPath(rel: string): string {
  if (!/[*?[\]{}]/.test(rel)) return rel;
  return rel.replace(/[\\*?[\]{}()!+@]/g, (c) => `\\${c}`);
}

async function readJsonObject(abs: string, rel: string, warnings: string[]): Promise<Record<string, unknown> | undefined> {
  try {
    const st = await fsp.stat(abs);
    if (st.size > MAX_CONFIG_JSON_BYTES) {
      warnings.push(`${rel} is larger than ${MAX_CONFIG_JSON_BYTES} bytes; not read for metadata`);
      return undefined;
    }
    const v: unknown = JSON.parse(await fsp.readFile(abs, 'utf8'));
    if (typeof v !== 'object' || v === null || Array.isArray(v)) {
      warnings.push(`${rel} is not a JSON object; not used for metadata`);
      return undefined;
    }
    return v as Record<string, unknown>;
  } catch (e) {
    warnings.push(`cannot read ${rel} for metadata: ${(e as Error).message}`);
    return undefined;
  }
}

function nonEmpty(v: unknown): string | undefined {
  return typeof v === 'string' && v.trim() !== '' ? v : undefined;
}

/** Go time.RFC3339 in local time: 2025-07-21T10:04:05+08:00 (Z for UTC). */
export function rfc3339Local(d: Date): string {
  const pad = (n: number) => String(n).padStart(2, '0');
  const off = -d.getTimezoneOffset();
  const zone = off === 0 ? 'Z' : `${off > 0 ? '+' : '-'}${pad(Math.floor(Math.abs(off) / 60))}:${pad(Math.abs(off) % 60)}`;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}${zone}`;
}

interface Field {
  keyword: string;
  label: string;
  value?: string;
  source?: string;
}

/**
 * Generate a Modelfile for directory `dir`. Throws ModctlError: E_NOT_FOUND (missing), E_WORKSPACE_INVALID (not a
 * directory, or a symlink), E_WORKSPACE_UNREADABLE, E_WORKSPACE_EMPTY, E_WORKSPACE_LIMIT (limits), E_NO_MODEL_FILES
 * (no MODEL or CODE file: modctl's message).
 */
export async function generateModelfile(dir: string, opts: GenerateOptions = {}): Promise<GenerateResult> {
  const limits: GenerateLimits = { ...GENERATE_LIMITS, ...opts.limits };
  const root = path.resolve(dir);
  let st: Stats;
  try {
    st = await fsp.lstat(root);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new NotFoundError(`directory ${dir} does not exist`, { cause: e });
    throw workspaceError('E_WORKSPACE_UNREADABLE', `cannot read ${dir}: ${(e as Error).message}`, e);
  }
  if (st.isSymbolicLink()) {
    const real = await fsp.realpath(root).catch(() => undefined);
    throw workspaceError('E_WORKSPACE_INVALID', `${dir} is a symlink, not a directory`, undefined, real ? `pass the real directory: ${real}` : undefined);
  }
  if (!st.isDirectory()) throw workspaceError('E_WORKSPACE_INVALID', `${dir} is not a directory`);

  const warnings: string[] = [];
  const walked = await walk(root, opts, limits, warnings);
  const files: GeneratedFile[] = walked
    .map((f) => ({ path: f.rel, kind: classifyFile(f.rel, f.size), size: f.size }))
    .sort((a, b) => KIND_ORDER.indexOf(a.kind) - KIND_ORDER.indexOf(b.kind) || cmpBytes(a.path, b.path));
  if (!files.some((f) => f.kind === 'model' || f.kind === 'code')) {
    throw new ModctlError('E_NO_MODEL_FILES', NO_MODEL_MESSAGE, {
      hint: 'no file looks like weights or code; write the Modelfile by hand or use --include for skipped files',
    });
  }
  const absOf = new Map(walked.map((f) => [f.rel, f.abs]));

  // modctl: config.json then generation_config.json from the directory root, later keys win.
  const cfg: Record<string, unknown> = {};
  const cfgSource: Record<string, string> = {};
  for (const name of ['config.json', 'generation_config.json']) {
    const abs = absOf.get(name);
    if (!abs) continue;
    const obj = await readJsonObject(abs, name, warnings);
    if (!obj) continue;
    for (const [k, v] of Object.entries(obj)) {
      cfg[k] = v;
      cfgSource[k] = name;
    }
  }

  let weights: WeightsMetadata | undefined;
  const weightFiles = files.filter((f) => f.kind === 'model').map((f) => absOf.get(f.path) as string);
  if (opts.infer !== false && weightFiles.length > 0) {
    weights = await inferWeightsMetadata(weightFiles);
    warnings.push(...weights.warnings);
  }
  const weightNames = (weights?.files ?? []).map((f) => path.relative(root, f).split(path.sep).join('/'));
  // Header values come from the first file of the model; aggregates (size, format) from all of them.
  const fromHeader = (what: string) => `Generated from ${what} in ${weightNames[0] ?? 'the weight files'}`;
  const fromWeights = (what: string) => `Generated from ${what} in ${weightNames.length === 1 ? weightNames[0] : 'the weight files'}`;
  const fromConfig = (key: string) => `Generated from "${key}" in ${cfgSource[key] ?? 'config.json'}`;

  const pick = (flag: string | undefined, ...candidates: Array<[string | undefined, string]>): { value?: string; source?: string } => {
    const f = nonEmpty(flag);
    if (f !== undefined) return { value: f };
    for (const [value, source] of candidates) if (nonEmpty(value) !== undefined) return { value, source };
    return {};
  };
  const qc = cfg.quantization_config as Record<string, unknown> | undefined;
  const isGguf = weights?.format === 'gguf';
  const fields: Field[] = [
    { keyword: 'NAME', label: 'Model name', ...pick(opts.name, [path.basename(root), '']) },
    {
      keyword: 'ARCH',
      label: 'Model architecture',
      ...pick(
        opts.arch,
        ['transformers_version' in cfg ? 'transformer' : undefined, fromConfig('transformers_version')],
        [weights?.architecture, fromHeader(isGguf ? '"general.architecture"' : '"__metadata__.architecture"')],
      ),
    },
    { keyword: 'FAMILY', label: 'Model family', ...pick(opts.family, [nonEmpty(cfg.model_type), fromConfig('model_type')]) },
    { keyword: 'FORMAT', label: 'Model format', ...pick(opts.format, [weights?.format, 'Generated from the weight files']) },
    { keyword: 'PARAMSIZE', label: 'Model paramsize', ...pick(opts.paramSize, [weights?.paramSize, fromWeights('the tensor shapes')]) },
    {
      keyword: 'PRECISION',
      label: 'Model precision',
      ...pick(
        opts.precision,
        [nonEmpty(cfg.torch_dtype), fromConfig('torch_dtype')],
        [weights?.precision, isGguf ? fromHeader('"general.file_type"') : fromWeights('the tensor dtypes')],
      ),
    },
    {
      keyword: 'QUANTIZATION',
      label: 'Model quantization',
      ...pick(
        opts.quantization,
        [weights?.quantization, fromHeader('"general.file_type"')],
        [qc && typeof qc === 'object' ? nonEmpty(qc.quant_method) : undefined, fromConfig('quantization_config')],
      ),
    },
  ];

  const blocks: string[] = [];
  if (opts.timestamp) blocks.push(`# Generated at ${rfc3339Local(opts.now ?? new Date())}`);
  for (const f of fields) {
    if (f.value === undefined) continue;
    const comment = f.source ? `# ${f.label} (${f.source})` : `# ${f.label}`;
    blocks.push(`${comment}\n${f.keyword} ${quoteValue(f.value)}`);
  }
  const groups: Array<[GeneratedKind, string, string, readonly string[]]> = [
    ['config', 'CONFIG', 'Config files', CONFIG_PATTERNS],
    ['code', 'CODE', 'Code files', CODE_PATTERNS],
    ['model', 'MODEL', 'Model files', MODEL_PATTERNS],
    ['doc', 'DOC', 'Doc files', DOC_PATTERNS],
  ];
  for (const [kind, keyword, label, patterns] of groups) {
    const lines = [`# ${label} (Generated from the files in the model directory)`, `# Supported file types: ${patterns.join(', ')}`];
    for (const f of files) if (f.kind === kind) lines.push(`${keyword} ${quoteValue(escapeGlobPath(f.path))}`);
    blocks.push(lines.join('\n'));
  }
  const text = blocks.join('\n\n') + '\n';
  const spec = parseModelfile(text, { file: 'Modelfile' });
  return { text, spec, files, warnings, weights };
}
