/**
 * Digest computation off the socket's thread. Blob downloads hand 1 MiB buffers to a hashing worker (one per
 * transfer session, multiplexing every blob by id) by transferring their ArrayBuffer — no copy — once the buffer has
 * been written to disk; the worker transfers the memory back so the caller reuses a small fixed set of buffers (no
 * allocation churn, bounded memory). The main thread only moves bytes from the socket to the file, so on a 2-core
 * machine hashing and network IO run in parallel. Small blobs hash inline.
 */
import { createHash, type Hash } from 'node:crypto';
import { Worker } from 'node:worker_threads';

export interface Hasher {
  /**
   * Feed the first `len` bytes of `buf` (default all). The caller must not touch `buf` until the promise resolves
   * with a buffer over the same memory (it may have travelled to the worker and back), which it may then reuse.
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


const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const hashes = new Map();
parentPort.on('message', (m) => {
  try {
    if (m.t === 'i') hashes.set(m.id, createHash(m.alg));
    else if (m.t === 'u') {
      const h = hashes.get(m.id);
      if (h) h.update(new Uint8Array(m.b, 0, m.l));
      // hand the memory back for reuse: no allocation churn on either side
      parentPort.postMessage({ t: 'a', id: m.id, b: m.b }, [m.b]);
    } else if (m.t === 'd') {
      const h = hashes.get(m.id);
      hashes.delete(m.id);
      parentPort.postMessage({ t: 'd', id: m.id, d: h ? h.digest('hex') : null });
    } else if (m.t === 'x') hashes.delete(m.id);
  } catch (e) {
    parentPort.postMessage({ t: 'e', id: m.id, e: String(e && e.message || e) });
  }
});
`;

interface HashState {
  /** Buffers in the worker, in order; each resolves when the worker gives the memory back. */
  inflight: Array<{ resolve: (b: Buffer) => void; reject: (e: Error) => void; fallback: Buffer; owned: boolean }>;
  done?: { resolve: (d: string) => void; reject: (e: Error) => void };
  failed?: Error;
}

/** One hashing worker shared by the blobs of a transfer; create lazily, `close()` at the end. */
export class HashPool {
  private worker?: Worker;
  private nextId = 1;
  private readonly states = new Map<number, HashState>();
  private closed = false;

  private ensureWorker(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(WORKER_SOURCE, { eval: true });
    w.unref();
    w.on('message', (m: { t: string; id: number; b?: ArrayBuffer; d?: string | null; e?: string }) => {
      const s = this.states.get(m.id);
      if (!s) return;
      if (m.t === 'a') {
        const p = s.inflight.shift();
        if (p) p.resolve(p.owned && m.b ? Buffer.from(m.b) : p.fallback);
      } else if (m.t === 'd') {
        this.states.delete(m.id);
        if (m.d) s.done?.resolve(m.d);
        else s.done?.reject(new Error('hash state lost'));
      } else if (m.t === 'e') {
        s.failed = new Error(`hashing failed: ${m.e}`);
        for (const p of s.inflight.splice(0)) p.reject(s.failed);
        s.done?.reject(s.failed);
      }
    });
    const failAll = (err: Error) => {
      for (const s of this.states.values()) {
        s.failed = err;
        for (const p of s.inflight.splice(0)) p.reject(err);
        s.done?.reject(err);
      }
      this.states.clear();
      this.worker = undefined;
    };
    w.on('error', (e) => failAll(e instanceof Error ? e : new Error(String(e))));
    w.on('exit', (code) => {
      if (!this.closed) failAll(new Error(`hashing worker exited (${code})`));
    });
    this.worker = w;
    return w;
  }

  create(alg: HashAlgorithm): Hasher {
    const w = this.ensureWorker();
    const id = this.nextId++;
    const state: HashState = { inflight: [] };
    this.states.set(id, state);
    w.postMessage({ t: 'i', id, alg });
    let finished = false;
    return {
      update: (buf: Buffer, len = buf.length) => {
        if (state.failed) return Promise.reject(state.failed);
        if (finished) return Promise.reject(new Error('update after digest'));
        if (!len) return Promise.resolve(buf);
        // Transfer only memory we own outright (allocUnsafeSlow buffers); anything else is copied once.
        const owned = buf.byteOffset === 0 && buf.buffer instanceof ArrayBuffer && buf.buffer.byteLength === buf.length;
        let ab: ArrayBuffer;
        if (owned) ab = buf.buffer as ArrayBuffer;
        else {
          ab = new ArrayBuffer(len);
          new Uint8Array(ab).set(buf.subarray(0, len));
        }
        return new Promise<Buffer>((resolve, reject) => {
          state.inflight.push({ resolve, reject, fallback: buf, owned });
          w.postMessage({ t: 'u', id, b: ab, l: len }, [ab]);
        });
      },
      digest: () => {
        finished = true;
        if (state.failed) return Promise.reject(state.failed);
        return new Promise<string>((resolve, reject) => {
          state.done = { resolve: (d) => resolve(`${alg}:${d}`), reject };
          w.postMessage({ t: 'd', id });
        });
      },
      abort: () => {
        finished = true;
        this.states.delete(id);
        w.postMessage({ t: 'x', id });
      },
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    const w = this.worker;
    this.worker = undefined;
    if (w) await w.terminate();
  }
}
