import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { Transform, type TransformCallback } from 'node:stream';
import { AbortedError, DigestMismatchError, SizeMismatchError, UsageError } from '../errors.js';

const DIGEST_RE = /^sha256:[a-f0-9]{64}$|^sha512:[a-f0-9]{128}$/;
/** Digest grammar from OCI image-spec descriptor.md; we only compute and verify sha256/sha512. */
const DIGEST_GRAMMAR = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

export function isDigest(s: string): boolean {
  return DIGEST_RE.test(s);
}

export function assertDigest(s: string, what = 'digest'): string {
  if (!DIGEST_RE.test(s)) {
    if (DIGEST_GRAMMAR.test(s)) throw new UsageError(`unsupported ${what} algorithm: ${s}`, { code: 'E_DIGEST_INVALID' });
    throw new UsageError(`invalid ${what}: ${JSON.stringify(s)}`, { code: 'E_DIGEST_INVALID' });
  }
  return s;
}

export function digestAlgorithm(d: string): 'sha256' | 'sha512' {
  return d.startsWith('sha512:') ? 'sha512' : 'sha256';
}

export function digestHex(d: string): string {
  return d.slice(d.indexOf(':') + 1);
}

export function sha256(data: Buffer | string): string {
  return 'sha256:' + createHash('sha256').update(data).digest('hex');
}

export function digestOf(data: Buffer | string, algorithm: 'sha256' | 'sha512' = 'sha256'): string {
  return `${algorithm}:` + createHash(algorithm).update(data).digest('hex');
}

/** Pass-through stream that counts and hashes bytes; read `digest`/`size` after it ends. */
/** `<alg>:<hex>` of a file's content, read in 1 MiB pieces; an abort throws AbortedError. */
export async function digestOfFile(file: string, algorithm: 'sha256' | 'sha512' = 'sha256', signal?: AbortSignal): Promise<string> {
  const h = createHash(algorithm);
  try {
    for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20, signal })) h.update(chunk as Buffer);
  } catch (e) {
    if (signal?.aborted) throw new AbortedError();
    throw e;
  }
  return `${algorithm}:` + h.digest('hex');
}

export class HashingStream extends Transform {
  private readonly hash: Hash;
  private readonly algorithm: string;
  size = 0;
  private _digest?: string;

  constructor(algorithm: 'sha256' | 'sha512' = 'sha256') {
    super({ highWaterMark: 1 << 20 });
    this.algorithm = algorithm;
    this.hash = createHash(algorithm);
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.size += chunk.length;
    cb(null, chunk);
  }
  override _flush(cb: TransformCallback): void {
    this._digest = `${this.algorithm}:` + this.hash.digest('hex');
    cb();
  }
  get digest(): string {
    if (!this._digest) throw new Error('digest read before the stream ended');
    return this._digest;
  }
}

/**
 * Pass-through stream that enforces an expected size and digest: more bytes than expected fail at once, and at the
 * end a short read or a digest mismatch fails the stream, so a consumer never commits unverified content.
 * `initial` lets a resumed transfer seed the hash with bytes already on disk.
 */
export class VerifyingStream extends Transform {
  private readonly hash: Hash;
  size: number;
  constructor(
    readonly expectedDigest: string,
    readonly expectedSize: number | undefined,
    opts: { initialHash?: Hash; initialSize?: number; what?: string } = {},
  ) {
    super({ highWaterMark: 1 << 20 });
    this.hash = opts.initialHash ?? createHash(digestAlgorithm(expectedDigest));
    this.size = opts.initialSize ?? 0;
    this.what = opts.what ?? 'blob';
  }
  private readonly what: string;
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.size += chunk.length;
    if (this.expectedSize !== undefined && this.size > this.expectedSize) {
      cb(new SizeMismatchError(this.expectedSize, this.size, this.what));
      return;
    }
    this.hash.update(chunk);
    cb(null, chunk);
  }
  override _flush(cb: TransformCallback): void {
    if (this.expectedSize !== undefined && this.size !== this.expectedSize) {
      cb(new SizeMismatchError(this.expectedSize, this.size, this.what));
      return;
    }
    const actual = `${digestAlgorithm(this.expectedDigest)}:` + this.hash.digest('hex');
    if (actual !== this.expectedDigest) {
      cb(new DigestMismatchError(this.expectedDigest, actual, this.what));
      return;
    }
    cb();
  }
}
