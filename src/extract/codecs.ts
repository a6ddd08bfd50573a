/**
 * Layer decoders: blob bytes → tar stream (modelpack.md §2.1: `+gzip` is RFC 1952, `+zstd` is RFC 8878 over the tar
 * stream; §9 #10: we read all four encodings). Node 20's zlib has no zstd, so zstd goes through fzstd (pure JS).
 */
import { pipeline, Transform, type Readable, type TransformCallback } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { Decompress } from 'fzstd';
import { ModctlError } from '../errors.js';
import type { LayerEncoding } from '../oci/media-types.js';

/**
 * The tar stream of a layer (for `raw` and `tar`, the input itself). Errors of `src` reach the returned stream, and
 * destroying the returned stream destroys `src`.
 */
export function decodeLayer(encoding: LayerEncoding, src: Readable): Readable {
  switch (encoding) {
    case 'raw':
    case 'tar':
      return src;
    case 'tar+gzip':
      return pipeline(src, createGunzip(), noop);
    case 'tar+zstd':
      return pipeline(src, new ZstdDecompressStream(), noop);
    default:
      throw new ModctlError('E_UNSUPPORTED_CODEC', `unsupported layer encoding: ${String(encoding)}`);
  }
}

function noop(): void {
  /* errors surface on the returned stream */
}

const ZSTD_MAGIC = 0xfd2fb528;
/** Skippable frames: magic 0x184D2A50–0x184D2A5F (RFC 8878 §3.1.2). */
const SKIPPABLE_MASK = 0xfffffff0;
const SKIPPABLE_MAGIC = 0x184d2a50;

/** Largest window we accept: 2^27 bytes, zstd's default decoder limit (`--memory=128MB`, windowLogMax 27). */
const MAX_WINDOW = 2 ** 27;

type ZState = 'magic' | 'skip-size' | 'skip' | 'fhd' | 'header-rest' | 'block-header' | 'block-body' | 'checksum';

/**
 * Streaming zstd decoder with real backpressure. fzstd decodes synchronously and emits every block its input
 * completes, so one 64 KiB input chunk of a highly compressible (or hostile) stream can expand to gigabytes in a
 * single call. We therefore parse the frame layout ourselves (RFC 8878 §3.1.1) and hand fzstd one whole unit at a
 * time (frame header, one block, checksum): each push yields at most one block (≤ 128 KiB by the spec, < 2 MiB even
 * for a malformed RLE block). When the readable side is full we stop feeding until `_read` asks for more.
 */
export class ZstdDecompressStream extends Transform {
  private readonly dec: Decompress;
  private state: ZState = 'magic';
  private need = 4;
  private unit: Buffer[] = [];
  private unitLen = 0;
  private lastBlock = false;
  private hasChecksum = false;
  private blocked = false;
  private pendingFeed?: () => void;
  /** Whether anything was fed to fzstd (an input of only skippable frames decodes to nothing). */
  private fedAny = false;
  /** The byte held back from fzstd (see pushDec). */
  private held?: Buffer;
  private frame = { single: false, dictBytes: 0, fcsBytes: 0 };

  constructor() {
    super({ readableHighWaterMark: 1 << 20, writableHighWaterMark: 1 << 16 });
    this.dec = new Decompress((data) => {
      if (data.length === 0) return;
      if (!this.push(Buffer.from(data.buffer, data.byteOffset, data.byteLength))) this.blocked = true;
    });
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.feed(chunk, 0, cb);
  }

  override _read(size: number): void {
    const r = this.pendingFeed;
    if (r) {
      this.pendingFeed = undefined;
      r();
    }
    super._read(size);
  }

  override _flush(cb: TransformCallback): void {
    if (!(this.state === 'magic' && this.unitLen === 0)) {
      cb(zstdError(new Error(`truncated zstd stream (inside ${this.state})`)));
      return;
    }
    try {
      if (this.held) this.dec.push(this.held, true);
      else if (this.fedAny) this.dec.push(new Uint8Array(0), true);
      this.held = undefined;
    } catch (e) {
      cb(zstdError(e));
      return;
    }
    cb();
  }

  private feed(chunk: Buffer, off: number, cb: TransformCallback): void {
    try {
      while (off < chunk.length) {
        const take = Math.min(this.need, chunk.length - off);
        this.unit.push(chunk.subarray(off, off + take));
        this.unitLen += take;
        this.need -= take;
        off += take;
        if (this.need > 0) break;
        const unit = this.unit.length === 1 ? this.unit[0] : Buffer.concat(this.unit, this.unitLen);
        this.unit = [];
        this.unitLen = 0;
        this.step(unit);
        if (this.blocked && off < chunk.length) {
          this.blocked = false;
          this.pendingFeed = () => this.feed(chunk, off, cb);
          return;
        }
      }
    } catch (e) {
      cb(zstdError(e));
      return;
    }
    this.blocked = false;
    cb();
  }

  /** A complete unit of `state` has arrived: interpret it, pass it to fzstd unless skippable, pick the next state. */
  private step(unit: Buffer): void {
    switch (this.state) {
      case 'magic': {
        const magic = unit.readUInt32LE(0);
        if (magic === ZSTD_MAGIC) {
          this.pushDec(unit);
          this.state = 'fhd';
          this.need = 1;
        } else if ((magic & SKIPPABLE_MASK) >>> 0 === SKIPPABLE_MAGIC) {
          this.state = 'skip-size';
          this.need = 4;
        } else {
          throw new Error('not a zstd frame (bad magic number)');
        }
        return;
      }
      case 'skip-size': {
        const n = unit.readUInt32LE(0);
        this.state = n === 0 ? 'magic' : 'skip';
        this.need = n === 0 ? 4 : n;
        return;
      }
      case 'skip':
        this.state = 'magic';
        this.need = 4;
        return;
      case 'fhd': {
        this.pushDec(unit);
        const fhd = unit[0];
        const fcsFlag = fhd >> 6;
        const single = (fhd >> 5) & 1;
        if ((fhd >> 3) & 1) throw new Error('reserved bit set in zstd frame header');
        this.hasChecksum = ((fhd >> 2) & 1) === 1;
        const dictBytes = [0, 1, 2, 4][fhd & 3];
        const fcsBytes = [single ? 1 : 0, 2, 4, 8][fcsFlag];
        this.frame = { single: single === 1, dictBytes, fcsBytes };
        const rest = (single ? 0 : 1) + dictBytes + fcsBytes;
        this.state = rest === 0 ? 'block-header' : 'header-rest';
        this.need = rest === 0 ? 3 : rest;
        return;
      }
      case 'header-rest':
        this.checkWindow(unit);
        this.pushDec(unit);
        this.state = 'block-header';
        this.need = 3;
        return;
      case 'block-header': {
        const h = unit[0] | (unit[1] << 8) | (unit[2] << 16);
        this.lastBlock = (h & 1) === 1;
        const type = (h >> 1) & 3;
        const size = h >>> 3;
        if (type === 3) throw new Error('reserved zstd block type');
        const body = type === 1 ? 1 : size;
        if (body === 0) {
          this.pushDec(unit);
          this.afterBlock();
        } else {
          // Keep the header with its body so fzstd sees the block in one piece.
          this.unit = [unit];
          this.unitLen = unit.length;
          this.state = 'block-body';
          this.need = body;
        }
        return;
      }
      case 'block-body':
        this.pushDec(unit);
        this.afterBlock();
        return;
      case 'checksum':
        this.pushDec(unit);
        this.state = 'magic';
        this.need = 4;
        return;
    }
  }

  /**
   * fzstd allocates the whole window up front (for a single-segment frame: the declared content size). Refuse what
   * the reference decoder refuses by default (window log > 27, i.e. more than 128 MiB) so a 14-byte header cannot
   * make us allocate gigabytes.
   */
  private checkWindow(rest: Buffer): void {
    const f = this.frame;
    let window: number;
    if (!f.single) {
      const wd = rest[0];
      const base = 2 ** (10 + (wd >> 3));
      window = base + (base / 8) * (wd & 7);
    } else {
      const off = f.dictBytes;
      if (f.fcsBytes === 1) window = rest[off];
      else if (f.fcsBytes === 2) window = rest.readUInt16LE(off) + 256;
      else if (f.fcsBytes === 4) window = rest.readUInt32LE(off);
      else window = Number(rest.readBigUInt64LE(off));
    }
    if (window > MAX_WINDOW) {
      throw new Error(`frame needs a ${window}-byte window, more than the ${MAX_WINDOW} bytes allowed`);
    }
  }

  private afterBlock(): void {
    if (!this.lastBlock) {
      this.state = 'block-header';
      this.need = 3;
    } else if (this.hasChecksum) {
      this.state = 'checksum';
      this.need = 4;
    } else {
      this.state = 'magic';
      this.need = 4;
    }
  }

  /**
   * Feed fzstd, always holding back the last byte until the next unit. fzstd 0.1.x keeps the (empty) leftover of a
   * push that ends exactly on a block boundary in its pending-input list and only clears that list when the leftover
   * is non-empty, so block-aligned pushes would pin every input buffer for the life of the stream. Holding back one
   * byte keeps a non-empty leftover; each push still completes at most one block.
   */
  private pushDec(b: Buffer): void {
    if (b.length === 0) return;
    this.fedAny = true;
    const body = b.subarray(0, b.length - 1);
    const data = this.held ? Buffer.concat([this.held, body]) : body;
    this.held = b.subarray(b.length - 1);
    if (data.length > 0) this.dec.push(data);
  }
}

function zstdError(e: unknown): ModctlError {
  const msg = e instanceof Error ? e.message : String(e);
  return new ModctlError('E_DECOMPRESS', `invalid zstd data: ${msg}`, {
    cause: e,
    hint: 'the layer is corrupt or not zstd-compressed',
  });
}
