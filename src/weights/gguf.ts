/**
 * Streaming GGUF header reader (https://github.com/ggml-org/ggml/blob/master/docs/gguf.md, versions 1–3, either byte
 * order). Reads the magic, version, counts, the typed key/value metadata and (optionally) the tensor infos, and stops
 * there: tensor data is never touched. Reads go through a small window buffer, so memory stays proportional to the
 * metadata we keep, not to the file.
 *
 * Why not `@huggingface/gguf`: it pulls in `@huggingface/tasks`, returns bigints everywhere, and has no caps on counts
 * or lengths; a hostile or truncated file must fail here with a clear E_GGUF_INVALID instead of allocating gigabytes.
 */

import { promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { ModctlError } from '../errors.js';

/** GGUF metadata value types (gguf.md `gguf_metadata_value_type`). */
export const GGUF_VALUE_TYPES = {
  UINT8: 0,
  INT8: 1,
  UINT16: 2,
  INT16: 3,
  UINT32: 4,
  INT32: 5,
  FLOAT32: 6,
  BOOL: 7,
  STRING: 8,
  ARRAY: 9,
  UINT64: 10,
  INT64: 11,
  FLOAT64: 12,
} as const;

const FIXED_SIZE: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };

/** Caps on what a header may declare. Real files are far below every one of them. */
export interface GgufLimits {
  /** Metadata entries (real models: 20–60). */
  maxKvCount: number;
  /** Tensors in one file (large MoE models: a few thousand per shard). */
  maxTensorCount: number;
  /** Bytes of one string (chat templates are the longest: tens of KiB). */
  maxStringBytes: number;
  /** Elements of one array (vocabularies and merges: up to a few hundred thousand). */
  maxArrayLength: number;
  /** Tensor dimensions (ggml's GGML_MAX_DIMS is 4). */
  maxDims: number;
  /** Total header bytes read before giving up. */
  maxHeaderBytes: number;
}

export const GGUF_LIMITS: Readonly<GgufLimits> = {
  maxKvCount: 65_536,
  maxTensorCount: 1_000_000,
  maxStringBytes: 16 * 1024 * 1024,
  maxArrayLength: 16 * 1024 * 1024,
  maxDims: 8,
  maxHeaderBytes: 512 * 1024 * 1024,
};

export interface GgufTensorInfo {
  name: string;
  /** Dimensions in elements, ggml order (innermost first). */
  shape: number[];
  /** ggml_type id (0 = F32, 1 = F16, 30 = BF16, …). */
  type: number;
  /** Offset of the tensor data relative to the start of the data section. */
  offset: number;
}

export interface GgufHeader {
  version: number;
  littleEndian: boolean;
  tensorCount: number;
  /**
   * Metadata by key. Integers are numbers (64-bit values beyond 2^53 are bigints), floats are numbers, booleans,
   * strings, arrays of those. Arrays longer than `keepArraysUpTo` are left out (listed in `skippedArrays`).
   */
  kv: Record<string, unknown>;
  /** GGUF value type of every key in `kv` (for arrays: ARRAY). */
  kvTypes: Record<string, number>;
  /** Arrays read past but not kept: key → length. */
  skippedArrays: Record<string, number>;
  /** Present unless `tensorInfos: false` was asked for. */
  tensorInfos?: GgufTensorInfo[];
  /** Bytes of header consumed (up to the end of the tensor infos, or of the metadata when those were skipped). */
  headerBytes: number;
}

export interface ReadGgufOptions {
  /** Read the tensor infos (default true; needed for parameter counts). */
  tensorInfos?: boolean;
  /** Arrays with more elements than this are walked but not kept (default: keep all within the limits). */
  keepArraysUpTo?: number;
  limits?: Partial<GgufLimits>;
}

const CHUNK = 1 << 20;

function invalid(file: string, reason: string, cause?: unknown): ModctlError {
  return new ModctlError('E_GGUF_INVALID', `${file}: invalid GGUF header: ${reason}`, {
    hint: 'the file is truncated, corrupt or not GGUF (a Git LFS pointer file instead of the weights?)',
    cause,
  });
}

/** Windowed reader over a file handle: keeps at most one chunk (or one oversized value) in memory. */
class Reader {
  private buf = Buffer.alloc(0);
  private bufStart = 0;
  pos = 0;
  le = true;
  constructor(
    private readonly fh: FileHandle,
    readonly fileSize: number,
    private readonly file: string,
    private readonly maxBytes: number,
  ) {}

  get remaining(): number {
    return this.fileSize - this.pos;
  }

  /** Make `n` bytes at `pos` available in the window. */
  async need(n: number, what: string): Promise<void> {
    if (this.pos + n > this.maxBytes) throw invalid(this.file, `header is larger than the ${this.maxBytes}-byte limit`);
    const off = this.pos - this.bufStart;
    if (off >= 0 && off + n <= this.buf.length) return;
    if (this.pos + n > this.fileSize) throw invalid(this.file, `unexpected end of file reading ${what} at offset ${this.pos} (file is ${this.fileSize} bytes)`);
    const size = Math.min(Math.max(n, CHUNK), this.fileSize - this.pos);
    const next = Buffer.allocUnsafe(size);
    let got = 0;
    while (got < size) {
      const { bytesRead } = await this.fh.read(next, got, size - got, this.pos + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    if (got < n) throw invalid(this.file, `unexpected end of file reading ${what} at offset ${this.pos}`);
    this.buf = next.subarray(0, got);
    this.bufStart = this.pos;
  }

  /** Advance past `n` bytes without reading them (skipped arrays and strings). */
  skip(n: number, what: string): void {
    if (this.pos + n > this.maxBytes) throw invalid(this.file, `header is larger than the ${this.maxBytes}-byte limit`);
    if (this.pos + n > this.fileSize) throw invalid(this.file, `unexpected end of file reading ${what} at offset ${this.pos} (file is ${this.fileSize} bytes)`);
    this.pos += n;
  }

  private at(): number {
    return this.pos - this.bufStart;
  }

  async u8(what: string): Promise<number> {
    await this.need(1, what);
    const v = this.buf.readUInt8(this.at());
    this.pos += 1;
    return v;
  }
  async u32(what: string): Promise<number> {
    await this.need(4, what);
    const v = this.le ? this.buf.readUInt32LE(this.at()) : this.buf.readUInt32BE(this.at());
    this.pos += 4;
    return v;
  }
  /** uint64 as a number; values beyond 2^53 fail (`what` names the field in the error). */
  async u64n(what: string): Promise<number> {
    const v = await this.u64(what);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw invalid(this.file, `${what} ${v} is out of range`);
    return Number(v);
  }
  async u64(what: string): Promise<bigint> {
    await this.need(8, what);
    const v = this.le ? this.buf.readBigUInt64LE(this.at()) : this.buf.readBigUInt64BE(this.at());
    this.pos += 8;
    return v;
  }
  async scalar(type: number, what: string): Promise<unknown> {
    const size = FIXED_SIZE[type];
    await this.need(size, what);
    const b = this.buf;
    const o = this.at();
    const le = this.le;
    let v: unknown;
    switch (type) {
      case 0: v = b.readUInt8(o); break;
      case 1: v = b.readInt8(o); break;
      case 2: v = le ? b.readUInt16LE(o) : b.readUInt16BE(o); break;
      case 3: v = le ? b.readInt16LE(o) : b.readInt16BE(o); break;
      case 4: v = le ? b.readUInt32LE(o) : b.readUInt32BE(o); break;
      case 5: v = le ? b.readInt32LE(o) : b.readInt32BE(o); break;
      case 6: v = le ? b.readFloatLE(o) : b.readFloatBE(o); break;
      case 7: v = b.readUInt8(o) !== 0; break;
      case 10: v = safeBig(le ? b.readBigUInt64LE(o) : b.readBigUInt64BE(o)); break;
      case 11: v = safeBig(le ? b.readBigInt64LE(o) : b.readBigInt64BE(o)); break;
      case 12: v = le ? b.readDoubleLE(o) : b.readDoubleBE(o); break;
      default: throw invalid(this.file, `unknown value type ${type} for ${what}`);
    }
    this.pos += size;
    return v;
  }
  async bytes(n: number, what: string): Promise<Buffer> {
    await this.need(n, what);
    const o = this.at();
    this.pos += n;
    return this.buf.subarray(o, o + n);
  }
}

function safeBig(v: bigint): number | bigint {
  return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v;
}

/**
 * Read the header of a local GGUF file. Throws ModctlError E_GGUF_INVALID on a bad magic, an unsupported version,
 * truncation, an unknown value type, a duplicate key, or any count/length beyond `GGUF_LIMITS` (or beyond what the
 * rest of the file could possibly hold).
 */
export async function readGgufHeader(file: string, opts: ReadGgufOptions = {}): Promise<GgufHeader> {
  const limits: GgufLimits = { ...GGUF_LIMITS, ...opts.limits };
  const keepUpTo = opts.keepArraysUpTo ?? Number.POSITIVE_INFINITY;
  let fh: FileHandle;
  try {
    fh = await fsp.open(file, 'r');
  } catch (e) {
    throw new ModctlError('E_GGUF_INVALID', `${file}: cannot open: ${(e as Error).message}`, { cause: e });
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw invalid(file, 'not a regular file');
    const r = new Reader(fh, st.size, file, limits.maxHeaderBytes);

    const magic = await r.bytes(4, 'magic');
    if (magic.toString('latin1') !== 'GGUF') {
      throw invalid(file, `bad magic ${JSON.stringify(magic.toString('latin1'))} (expected "GGUF")`);
    }
    let version = await r.u32('version');
    if (version > 0xffff && (version & 0xffff) === 0) {
      // Big-endian files (s390x builds) store every number big-endian, the version included.
      r.le = false;
      version = (((version & 0xff) << 24) | ((version & 0xff00) << 8) | ((version >>> 8) & 0xff00) | (version >>> 24)) >>> 0;
    }
    if (version < 1 || version > 3) throw invalid(file, `unsupported GGUF version ${version}`);
    // Version 1 used 32-bit counts and lengths; 2 and later 64-bit.
    const count = (what: string) => (version === 1 ? r.u32(what) : r.u64n(what));

    const tensorCount = await count('tensor count');
    const kvCount = await count('metadata count');
    if (tensorCount > limits.maxTensorCount) throw invalid(file, `tensor count ${tensorCount} exceeds the limit of ${limits.maxTensorCount}`);
    if (kvCount > limits.maxKvCount) throw invalid(file, `metadata count ${kvCount} exceeds the limit of ${limits.maxKvCount}`);
    // Every KV needs at least a length, a type and one value byte: a count the file cannot hold is corrupt.
    if (kvCount * 13 > r.remaining) throw invalid(file, `metadata count ${kvCount} does not fit in the file`);

    const readString = async (what: string): Promise<string> => {
      const len = await count(`${what} length`);
      if (len > limits.maxStringBytes) throw invalid(file, `${what} is ${len} bytes, over the ${limits.maxStringBytes}-byte limit`);
      const b = await r.bytes(len, what);
      return b.toString('utf8');
    };

    const skipString = async (what: string): Promise<void> => {
      const len = await count(`${what} length`);
      if (len > limits.maxStringBytes) throw invalid(file, `${what} is ${len} bytes, over the ${limits.maxStringBytes}-byte limit`);
      r.skip(len, what);
    };

    const readValue = async (type: number, what: string): Promise<unknown> => {
      if (type === GGUF_VALUE_TYPES.STRING) return readString(what);
      if (type === GGUF_VALUE_TYPES.ARRAY) throw invalid(file, `nested array in ${what}`);
      if (!(type in FIXED_SIZE)) throw invalid(file, `unknown value type ${type} for ${what}`);
      return r.scalar(type, what);
    };

    const kv: Record<string, unknown> = {};
    const kvTypes: Record<string, number> = {};
    const skippedArrays: Record<string, number> = {};
    for (let i = 0; i < kvCount; i++) {
      const key = await readString(`key #${i}`);
      if (Object.prototype.hasOwnProperty.call(kvTypes, key)) throw invalid(file, `duplicate key ${JSON.stringify(key)}`);
      const type = await r.u32(`type of ${key}`);
      if (type === GGUF_VALUE_TYPES.ARRAY) {
        const itemType = await r.u32(`item type of ${key}`);
        const len = await count(`length of ${key}`);
        if (len > limits.maxArrayLength) throw invalid(file, `array ${key} has ${len} elements, over the limit of ${limits.maxArrayLength}`);
        const minItem = itemType === GGUF_VALUE_TYPES.STRING ? (version === 1 ? 4 : 8) : (FIXED_SIZE[itemType] ?? 1);
        if (len * minItem > r.remaining) throw invalid(file, `array ${key} (${len} elements) does not fit in the file`);
        if (itemType === GGUF_VALUE_TYPES.ARRAY) throw invalid(file, `nested array in ${key}`);
        if (itemType !== GGUF_VALUE_TYPES.STRING && !(itemType in FIXED_SIZE)) throw invalid(file, `unknown value type ${itemType} for ${key}[]`);
        if (len <= keepUpTo) {
          const items: unknown[] = [];
          for (let j = 0; j < len; j++) items.push(await readValue(itemType, `${key}[${j}]`));
          kv[key] = items;
        } else {
          // Walk past without decoding: vocabularies hold hundreds of thousands of strings.
          if (itemType === GGUF_VALUE_TYPES.STRING) for (let j = 0; j < len; j++) await skipString(`${key}[${j}]`);
          else r.skip(len * FIXED_SIZE[itemType], key);
          skippedArrays[key] = len;
        }
        kvTypes[key] = type;
      } else {
        kv[key] = await readValue(type, key);
        kvTypes[key] = type;
      }
    }

    const header: GgufHeader = { version, littleEndian: r.le, tensorCount, kv, kvTypes, skippedArrays, headerBytes: r.pos };
    if (opts.tensorInfos === false) return header;

    // name (≥ 8 bytes of length) + n_dims (4) + type (4) + offset (8)
    if (tensorCount * 24 > r.remaining) throw invalid(file, `tensor count ${tensorCount} does not fit in the file`);
    const infos: GgufTensorInfo[] = [];
    for (let i = 0; i < tensorCount; i++) {
      const name = await readString(`tensor #${i} name`);
      const nDims = await r.u32(`dimensions of tensor ${name}`);
      if (nDims > limits.maxDims) throw invalid(file, `tensor ${name} has ${nDims} dimensions (limit ${limits.maxDims})`);
      const shape: number[] = [];
      for (let d = 0; d < nDims; d++) shape.push(await count(`dimension ${d} of tensor ${name}`));
      const type = await r.u32(`type of tensor ${name}`);
      const offset = await r.u64n(`offset of tensor ${name}`);
      infos.push({ name, shape, type, offset });
    }
    header.tensorInfos = infos;
    header.headerBytes = r.pos;
    return header;
  } finally {
    await fh.close();
  }
}
