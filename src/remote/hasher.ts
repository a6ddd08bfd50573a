/**
 * Digest computation for downloads on the undici path: inline on the main thread, on the chunks as they arrive.
 */
import { createHash, type Hash } from 'node:crypto';

export interface Hasher {
  /**
   * Feed the first `len` bytes of `buf` (default all). The caller must not touch `buf` until the promise resolves
   * with it.
   */
  update(buf: Buffer, len?: number): Promise<Buffer>;
  /** `<alg>:<hex>`; the hasher is finished afterwards. */
  digest(): Promise<string>;
  /** Drop without a result. */
  abort(): void;
}

export type HashAlgorithm = 'sha256' | 'sha512';

export class InlineHasher implements Hasher {
  private readonly h: Hash;
  constructor(private readonly alg: HashAlgorithm) {
    this.h = createHash(alg);
  }
  async update(buf: Buffer, len = buf.length): Promise<Buffer> {
    this.h.update(len === buf.length ? buf : buf.subarray(0, len));
    return buf;
  }
  async digest(): Promise<string> {
    return `${this.alg}:${this.h.digest('hex')}`;
  }
  abort(): void {}
}


