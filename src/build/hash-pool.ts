import { Worker } from 'node:worker_threads';
import os from 'node:os';
import { AbortedError } from '../errors.js';
import { workerUrl } from '../util/worker-url.js';

interface Pending {
  resolve: (v: { digest: string; size: number }) => void;
  reject: (e: Error) => void;
  onProgress?: (bytes: number) => void;
}

/**
 * A small pool of copy-and-hash workers. Each job copies src → dst (dst must not exist) and returns the sha256 and
 * size of the bytes copied. Abort terminates the workers (their partial dst files are the caller's to remove).
 */
export class HashCopyPool {
  private readonly workers: Worker[] = [];
  private readonly idle: Worker[] = [];
  private readonly queue: Array<() => void> = [];
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closed = false;

  constructor(size = Math.max(1, Math.min(4, os.availableParallelism()))) {
    const url = workerUrl('copy-worker', import.meta.url);
    for (let i = 0; i < size; i++) {
      const w = new Worker(url);
      w.on('message', (m: any) => this.onMessage(w, m));
      w.on('error', (e) => this.failAll(e));
      this.workers.push(w);
      this.idle.push(w);
    }
  }

  private onMessage(w: Worker, m: any): void {
    const p = this.pending.get(m.id);
    if (!p) return;
    if (m.progress !== undefined) {
      p.onProgress?.(m.progress);
      return;
    }
    this.pending.delete(m.id);
    if (m.error) {
      const err = Object.assign(new Error(m.error.message), { code: m.error.code });
      p.reject(err);
    } else p.resolve({ digest: m.digest, size: m.size });
    this.idle.push(w);
    this.queue.shift()?.();
  }

  private failAll(e: Error): void {
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }

  async copy(src: string, dst: string, onProgress?: (bytes: number) => void, signal?: AbortSignal): Promise<{ digest: string; size: number }> {
    if (this.closed) throw new AbortedError();
    while (this.idle.length === 0) await new Promise<void>((r) => this.queue.push(r));
    if (signal?.aborted) throw new AbortedError();
    const w = this.idle.pop()!;
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        this.pending.delete(id);
        reject(new AbortedError());
        void this.close();
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.pending.set(id, {
        resolve: (v) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(v);
        },
        reject: (e) => {
          signal?.removeEventListener('abort', onAbort);
          reject(e);
        },
        onProgress,
      });
      w.postMessage({ id, src, dst });
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.workers.map((w) => w.terminate()));
    for (const r of this.queue.splice(0)) r();
  }
}
