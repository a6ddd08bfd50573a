/**
 * Builders for tiny GGUF and safetensors files, written the way llama.cpp's gguf-py and the safetensors library lay
 * them out. Tensor data is zeros; large tensors are written as sparse files (truncate), so a "1.5B parameter" file
 * costs no disk.
 */

import { closeSync, openSync, ftruncateSync, writeSync } from 'node:fs';

export type GgufScalarType = 'u8' | 'i8' | 'u16' | 'i16' | 'u32' | 'i32' | 'f32' | 'bool' | 'str' | 'u64' | 'i64' | 'f64';

export type GgufValue =
  | { type: GgufScalarType; value: number | bigint | boolean | string }
  | { type: 'arr'; itemType: GgufScalarType; values: Array<number | bigint | boolean | string> };

const TYPE_ID: Record<GgufScalarType | 'arr', number> = { u8: 0, i8: 1, u16: 2, i16: 3, u32: 4, i32: 5, f32: 6, bool: 7, str: 8, arr: 9, u64: 10, i64: 11, f64: 12 };

export const u32 = (value: number): GgufValue => ({ type: 'u32', value });
export const str = (value: string): GgufValue => ({ type: 'str', value });
export const f32 = (value: number): GgufValue => ({ type: 'f32', value });
export const arr = (itemType: GgufScalarType, values: Array<number | bigint | boolean | string>): GgufValue => ({ type: 'arr', itemType, values });

export interface GgufSpec {
  version?: number;
  bigEndian?: boolean;
  kv: Array<[string, GgufValue]>;
  tensors?: Array<{ name: string; shape: number[]; type?: number }>;
  /** Override the declared counts (corruption tests). */
  tensorCount?: number | bigint;
  kvCount?: number | bigint;
}

class Writer {
  private parts: Buffer[] = [];
  constructor(
    private readonly be: boolean,
    private readonly version: number,
  ) {}
  raw(b: Buffer): void {
    this.parts.push(b);
  }
  num(type: GgufScalarType, v: number | bigint | boolean): void {
    const size = { u8: 1, i8: 1, u16: 2, i16: 2, u32: 4, i32: 4, f32: 4, bool: 1, u64: 8, i64: 8, f64: 8, str: 0 }[type];
    const b = Buffer.alloc(size);
    const be = this.be;
    const x = Number(v);
    switch (type) {
      case 'u8': b.writeUInt8(x); break;
      case 'i8': b.writeInt8(x); break;
      case 'bool': b.writeUInt8(v ? 1 : 0); break;
      case 'u16': if (be) b.writeUInt16BE(x); else b.writeUInt16LE(x); break;
      case 'i16': if (be) b.writeInt16BE(x); else b.writeInt16LE(x); break;
      case 'u32': if (be) b.writeUInt32BE(x); else b.writeUInt32LE(x); break;
      case 'i32': if (be) b.writeInt32BE(x); else b.writeInt32LE(x); break;
      case 'f32': if (be) b.writeFloatBE(x); else b.writeFloatLE(x); break;
      case 'f64': if (be) b.writeDoubleBE(x); else b.writeDoubleLE(x); break;
      case 'u64': if (be) b.writeBigUInt64BE(BigInt(v as number)); else b.writeBigUInt64LE(BigInt(v as number)); break;
      case 'i64': if (be) b.writeBigInt64BE(BigInt(v as number)); else b.writeBigInt64LE(BigInt(v as number)); break;
      case 'str': throw new Error('use string()');
    }
    this.parts.push(b);
  }
  /** A count or length: uint32 in GGUF v1, uint64 after. */
  count(v: number | bigint): void {
    if (this.version === 1) this.num('u32', v);
    else this.num('u64', v);
  }
  string(s: string): void {
    const b = Buffer.from(s, 'utf8');
    this.count(b.length);
    this.parts.push(b);
  }
  value(v: GgufValue): void {
    if (v.type === 'arr') {
      this.num('u32', TYPE_ID[v.itemType]);
      this.count(v.values.length);
      for (const x of v.values) this.scalar(v.itemType, x);
    } else this.scalar(v.type, v.value);
  }
  scalar(type: GgufScalarType, v: number | bigint | boolean | string): void {
    if (type === 'str') this.string(String(v));
    else this.num(type, v as number | bigint | boolean);
  }
  get length(): number {
    return this.parts.reduce((a, b) => a + b.length, 0);
  }
  buffer(): Buffer {
    return Buffer.concat(this.parts);
  }
}

/** GGML type sizes for the data section: F32 4 bytes per element, F16/BF16 2, everything else treated as 1. */
function elementBytes(type: number): number {
  return type === 0 ? 4 : type === 1 || type === 30 ? 2 : 1;
}

/** GGUF header bytes (magic, version, counts, KVs, tensor infos, padding to 32). */
export function ggufHeaderBytes(spec: GgufSpec): { header: Buffer; dataBytes: number } {
  const version = spec.version ?? 3;
  const w = new Writer(spec.bigEndian ?? false, version);
  w.raw(Buffer.from('GGUF', 'latin1'));
  w.num('u32', version);
  const tensors = spec.tensors ?? [];
  w.count(spec.tensorCount ?? tensors.length);
  w.count(spec.kvCount ?? spec.kv.length);
  for (const [k, v] of spec.kv) {
    w.string(k);
    w.num('u32', TYPE_ID[v.type]);
    w.value(v);
  }
  let offset = 0;
  for (const t of tensors) {
    w.string(t.name);
    w.num('u32', t.shape.length);
    for (const d of t.shape) w.count(d);
    const type = t.type ?? 0;
    w.num('u32', type);
    w.num('u64', offset);
    const bytes = t.shape.reduce((a, b) => a * b, 1) * elementBytes(type);
    offset += Math.ceil(bytes / 32) * 32;
  }
  const pad = (32 - (w.length % 32)) % 32;
  w.raw(Buffer.alloc(pad));
  return { header: w.buffer(), dataBytes: offset };
}

/** Write a GGUF file: header plus a (sparse) zero data section. */
export function writeGguf(file: string, spec: GgufSpec): void {
  const { header, dataBytes } = ggufHeaderBytes(spec);
  const fd = openSync(file, 'w');
  try {
    writeSync(fd, header);
    ftruncateSync(fd, header.length + dataBytes);
  } finally {
    closeSync(fd);
  }
}

const DTYPE_BYTES: Record<string, number> = { BOOL: 1, U8: 1, I8: 1, F8_E4M3: 1, F8_E5M2: 1, U16: 2, I16: 2, F16: 2, BF16: 2, U32: 4, I32: 4, F32: 4, U64: 8, I64: 8, F64: 8 };

export interface SafetensorsSpec {
  tensors: Record<string, { dtype: string; shape: number[] }>;
  metadata?: Record<string, string>;
}

/** Safetensors bytes of the header part (length prefix + JSON padded with spaces to 8) and the data size. */
export function safetensorsHeaderBytes(spec: SafetensorsSpec): { header: Buffer; dataBytes: number } {
  const json: Record<string, unknown> = {};
  if (spec.metadata) json.__metadata__ = spec.metadata;
  let offset = 0;
  for (const [name, t] of Object.entries(spec.tensors)) {
    const bytes = t.shape.reduce((a, b) => a * b, 1) * (DTYPE_BYTES[t.dtype] ?? 1);
    json[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let text = JSON.stringify(json);
  text += ' '.repeat((8 - (Buffer.byteLength(text) % 8)) % 8);
  const body = Buffer.from(text, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(body.length));
  return { header: Buffer.concat([len, body]), dataBytes: offset };
}

export function writeSafetensors(file: string, spec: SafetensorsSpec): void {
  const { header, dataBytes } = safetensorsHeaderBytes(spec);
  const fd = openSync(file, 'w');
  try {
    writeSync(fd, header);
    ftruncateSync(fd, header.length + dataBytes);
  } finally {
    closeSync(fd);
  }
}

/** A Qwen2-like GGUF header: architecture, name, file type, context length, a float, and a vocabulary array. */
export function qwenKv(fileType: number, extra: Array<[string, GgufValue]> = []): Array<[string, GgufValue]> {
  return [
    ['general.architecture', str('qwen2')],
    ['general.name', str('Qwen2 0.5B Instruct')],
    ['general.file_type', u32(fileType)],
    ['qwen2.context_length', u32(32768)],
    ['qwen2.attention.layer_norm_rms_epsilon', f32(1e-6)],
    ['tokenizer.ggml.tokens', arr('str', Array.from({ length: 60 }, (_, i) => `tok${i}`))],
    ...extra,
  ];
}
