/**
 * Safetensors header reader (https://github.com/huggingface/safetensors, "Format"): an 8-byte little-endian header
 * length N, then N bytes of JSON mapping tensor names to {dtype, shape, data_offsets} plus an optional
 * `__metadata__` string map. Only those 8 + N bytes are read.
 */

import { promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { ModctlError } from '../errors.js';

/** Headers above this are refused (Docker model-runner uses the same 100 MiB cap; real headers are < 10 MiB). */
export const SAFETENSORS_MAX_HEADER_BYTES = 100 * 1024 * 1024;

export interface SafetensorsTensor {
  /** As written: F16, BF16, F32, F8_E4M3, I8, … */
  dtype: string;
  shape: number[];
  /** [begin, end) byte offsets relative to the start of the data section. */
  dataOffsets: [number, number];
}

export interface SafetensorsHeader {
  /** N, the JSON header length. */
  headerSize: number;
  tensors: Record<string, SafetensorsTensor>;
  /** `__metadata__` (values that are not strings are converted with String()). */
  metadata: Record<string, string>;
}

function invalid(file: string, reason: string, cause?: unknown): ModctlError {
  return new ModctlError('E_SAFETENSORS_INVALID', `${file}: invalid safetensors header: ${reason}`, {
    hint: 'the file is truncated, corrupt or not safetensors (a Git LFS pointer file instead of the weights?)',
    cause,
  });
}

async function readExactly(fh: FileHandle, n: number, pos: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(n);
  let got = 0;
  while (got < n) {
    const { bytesRead } = await fh.read(buf, got, n - got, pos + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return buf.subarray(0, got);
}

function isDim(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/**
 * Read and validate a safetensors header. Throws ModctlError E_SAFETENSORS_INVALID when the length prefix is
 * missing or beyond the cap or the file, the JSON is malformed or not an object, a tensor entry lacks a string
 * dtype / integer shape / ordered data_offsets, or the data offsets point past the end of the file.
 */
export async function readSafetensorsHeader(
  file: string,
  opts: { maxHeaderBytes?: number } = {},
): Promise<SafetensorsHeader> {
  const cap = opts.maxHeaderBytes ?? SAFETENSORS_MAX_HEADER_BYTES;
  let fh: FileHandle;
  try {
    fh = await fsp.open(file, 'r');
  } catch (e) {
    throw new ModctlError('E_SAFETENSORS_INVALID', `${file}: cannot open: ${(e as Error).message}`, { cause: e });
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw invalid(file, 'not a regular file');
    const lenBuf = await readExactly(fh, 8, 0);
    if (lenBuf.length < 8) throw invalid(file, `file is only ${st.size} bytes, too short for the 8-byte header length`);
    const n = lenBuf.readBigUInt64LE(0);
    if (n > BigInt(cap)) throw invalid(file, `header length ${n} exceeds the ${cap}-byte limit`);
    const headerSize = Number(n);
    if (headerSize < 2) throw invalid(file, `header length ${headerSize} is too small`);
    if (8 + headerSize > st.size) throw invalid(file, `header length ${headerSize} runs past the end of the file (${st.size} bytes)`);
    const raw = await readExactly(fh, headerSize, 8);
    if (raw.length < headerSize) throw invalid(file, 'unexpected end of file in the header');

    let json: unknown;
    try {
      json = JSON.parse(raw.toString('utf8'));
    } catch (e) {
      throw invalid(file, `header is not valid JSON (${(e as Error).message})`, e);
    }
    if (typeof json !== 'object' || json === null || Array.isArray(json)) throw invalid(file, 'header is not a JSON object');

    const dataSize = st.size - 8 - headerSize;
    const tensors: Record<string, SafetensorsTensor> = {};
    const metadata: Record<string, string> = {};
    for (const [name, value] of Object.entries(json as Record<string, unknown>)) {
      if (name === '__metadata__') {
        if (value === null) continue;
        if (typeof value !== 'object' || Array.isArray(value)) throw invalid(file, '__metadata__ is not an object');
        for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
          metadata[k] = typeof v === 'string' ? v : typeof v === 'object' ? JSON.stringify(v) : String(v);
        }
        continue;
      }
      if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalid(file, `tensor ${JSON.stringify(name)} is not an object`);
      const t = value as Record<string, unknown>;
      if (typeof t.dtype !== 'string' || t.dtype === '') throw invalid(file, `tensor ${JSON.stringify(name)} has no dtype`);
      if (!Array.isArray(t.shape) || !t.shape.every(isDim)) throw invalid(file, `tensor ${JSON.stringify(name)} has an invalid shape`);
      const off = t.data_offsets;
      if (!Array.isArray(off) || off.length !== 2 || !isDim(off[0]) || !isDim(off[1]) || off[0] > off[1]) {
        throw invalid(file, `tensor ${JSON.stringify(name)} has invalid data_offsets`);
      }
      if (off[1] > dataSize) {
        throw invalid(file, `tensor ${JSON.stringify(name)} ends at data offset ${off[1]} but the file holds only ${dataSize} data bytes (truncated?)`);
      }
      tensors[name] = { dtype: t.dtype, shape: t.shape as number[], dataOffsets: [off[0], off[1]] };
    }
    return { headerSize, tensors, metadata };
  } finally {
    await fh.close();
  }
}
