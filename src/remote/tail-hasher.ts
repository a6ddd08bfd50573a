/**
 * Hashing that trails the download on other cores. The main thread only moves socket bytes into the partial file;
 * a worker re-reads each blob's file (from the page cache) behind the writer — never past the last completed write —
 * and hashes it, so on a 2-core machine receiving and hashing run in parallel and several blobs hash on separate
 * workers. The digest is still checked before the partial file is renamed into the store, and because the worker
 * hashes the file from byte 0, a resumed download needs no separate re-hash of its prefix.
 */
import { Worker } from 'node:worker_threads';
import os from 'node:os';
import type { Hasher, HashAlgorithm } from './hasher.js';

const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const fs = require('node:fs');
const { createHash } = require('node:crypto');
const jobs = new Map();
// 1 MiB reads: the buffer stays in cache between read and hash (measured faster than 8 MiB here)
const buf = Buffer.allocUnsafe(1 << 20);
function pump(j) {
  // opened lazily: the partial file exists once the first write has completed
  if (j.pos < j.durable && j.fd === undefined) j.fd = fs.openSync(j.file, 'r');
  while (j.pos < j.durable) {
    const n = fs.readSync(j.fd, buf, 0, Math.min(buf.length, j.durable - j.pos), j.pos);
    if (n <= 0) throw new Error('the partial file is shorter than what was written to it');
    j.h.update(n === buf.length ? buf : buf.subarray(0, n));
    j.pos += n;
  }
}
function close(id) {
  const j = jobs.get(id);
  if (!j) return;
  jobs.delete(id);
  if (j.fd !== undefined) try { fs.closeSync(j.fd); } catch {}
}
parentPort.on('message', (m) => {
  try {
    if (m.t === 'i') jobs.set(m.id, { file: m.file, fd: undefined, h: createHash(m.alg), pos: 0, durable: 0 });
    else if (m.t === 'p') {
      const j = jobs.get(m.id);
      if (j && m.pos > j.durable) { j.durable = m.pos; pump(j); }
    } else if (m.t === 'd') {
      const j = jobs.get(m.id);
      if (!j) return parentPort.postMessage({ t: 'e', id: m.id, e: 'hash state lost' });
      if (m.pos > j.durable) j.durable = m.pos;
      pump(j);
      const d = j.h.digest('hex');
      close(m.id);
      parentPort.postMessage({ t: 'd', id: m.id, d });
    } else if (m.t === 'x') close(m.id);
  } catch (e) {
    close(m.id);
    parentPort.postMessage({ t: 'e', id: m.id, e: String((e && e.message) || e) });
  }
});
`;

interface Pending {
  resolve: (d: string) => void;
  reject: (e: Error) => void;
}

/** A few trailing-hash workers shared by the blobs of one pull; `close()` at the end. */
export class TailHashPool {
  private readonly workers: Worker[] = [];
  private readonly load: number[] = [];
  private readonly done = new Map<number, Pending>();
  private readonly failed = new Map<number, Error>();
  private nextId = 1;
  private closed = false;

  constructor(private readonly size = Math.max(1, Math.min(4, os.availableParallelism()))) {}

  private pick(): number {
    if (this.workers.length < this.size) {
      const w = new Worker(WORKER_SOURCE, { eval: true });
      w.unref();
      w.on('message', (m: { t: string; id: number; d?: string; e?: string }) => {
        const p = this.done.get(m.id);
        if (m.t === 'd') {
          this.done.delete(m.id);
          p?.resolve(m.d!);
        } else if (m.t === 'e') {
          const err = new Error(`hashing failed: ${m.e}`);
          this.failed.set(m.id, err);
          this.done.delete(m.id);
          p?.reject(err);
        }
      });
      const fail = (err: Error) => {
        for (const [id, p] of this.done) {
          this.failed.set(id, err);
          p.reject(err);
        }
        this.done.clear();
      };
      w.on('error', (e) => fail(e instanceof Error ? e : new Error(String(e))));
      w.on('exit', (code) => {
        if (!this.closed) fail(new Error(`hashing worker exited (${code})`));
      });
      this.workers.push(w);
      this.load.push(0);
      return this.workers.length - 1;
    }
    let best = 0;
    for (let i = 1; i < this.load.length; i++) if (this.load[i] < this.load[best]) best = i;
    return best;
  }

  /** A hasher for `file`, which the caller writes from byte 0 and reports with durable(pos) as writes complete. */
  create(file: string, alg: HashAlgorithm): TailHasher {
    const wi = this.pick();
    const w = this.workers[wi];
    const id = this.nextId++;
    this.load[wi]++;
    w.postMessage({ t: 'i', id, file, alg });
    let durable = 0;
    let finished = false;
    const release = () => {
      if (!finished) {
        finished = true;
        this.load[wi]--;
      }
    };
    const hasher: TailHasher = {
      // the bytes are read back from the file by the worker: nothing to do per chunk
      update: (buf: Buffer) => Promise.resolve(buf),
      durable: (pos: number) => {
        if (finished || pos <= durable) return;
        durable = pos;
        w.postMessage({ t: 'p', id, pos });
      },
      digest: () => {
        const err = this.failed.get(id);
        if (err) return Promise.reject(err);
        return new Promise<string>((resolve, reject) => {
          this.done.set(id, {
            resolve: (d) => {
              release();
              resolve(`${alg}:${d}`);
            },
            reject: (e) => {
              release();
              reject(e);
            },
          });
          w.postMessage({ t: 'd', id, pos: durable });
        });
      },
      abort: () => {
        if (finished) return;
        release();
        this.done.delete(id);
        w.postMessage({ t: 'x', id });
      },
    };
    return hasher;
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

export interface TailHasher extends Hasher {
  /** Bytes [0, pos) of the file are written: the worker may hash up to there. */
  durable(pos: number): void;
}

export function isTailHasher(h: Hasher): h is TailHasher {
  return typeof (h as Partial<TailHasher>).durable === 'function';
}
