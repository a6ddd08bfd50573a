/**
 * Main-thread side of the worker transfer paths: a small pool of worker threads (fetch-worker.ts) that receive blobs
 * (fetch-core.ts) or send file ranges (send-core.ts); a RegistryClient keeps one pool for each. Workers start on first
 * use or when warmed, each running several transfers at once; a job goes to the least-loaded worker. Workers hold the event loop
 * only while they have work, and are terminated by close().
 */
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import type { FetchJob, FetchOutcome } from './fetch-core.js';
import type { SendJob, SendOutcome } from './send-core.js';
import { workerUrl } from '../util/worker-url.js';

interface Slot {
  worker: Worker;
  load: number;
}

type Outcome = FetchOutcome | SendOutcome;

interface Pending {
  slot: Slot;
  resolve: (o: Outcome) => void;
  onProgress?: (pos: number) => void;
}

export class FetchPool {
  private readonly slots: Slot[] = [];
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closed = false;
  readonly size: number;

  /** `size` workers at most; default: one per core, at most 4. */
  constructor(size?: number) {
    this.size = Math.max(1, size ?? Math.min(4, os.availableParallelism()));
  }

  /**
   * Start up to `n` workers now, idle (they do not hold the event loop), so that a thread's start-up (~20 ms each,
   * more when several start on a busy machine) overlaps the requests that come before the first big blob.
   */
  warm(n = this.size): void {
    while (!this.closed && this.slots.length < Math.min(n, this.size)) this.spawn().worker.unref();
  }

  /** Receive a blob into a file (fetch-core.ts); progress is the file position written. */
  run(job: FetchJob, opts: { signal?: AbortSignal; onProgress?: (pos: number) => void } = {}): Promise<FetchOutcome> {
    return this.dispatch('run', job, opts, { kind: 'failed', message: 'aborted', name: 'AbortError', code: 'ABORT_ERR' }) as Promise<FetchOutcome>;
  }

  /** Send a file range as a request body (send-core.ts); progress is the bytes sent. */
  send(job: SendJob, opts: { signal?: AbortSignal; onProgress?: (sent: number) => void } = {}): Promise<SendOutcome> {
    return this.dispatch('send', job, opts, { kind: 'failed', message: 'aborted', name: 'AbortError', code: 'ABORT_ERR', sent: 0 }) as Promise<SendOutcome>;
  }

  private dispatch(type: 'run' | 'send', job: FetchJob | SendJob, opts: { signal?: AbortSignal; onProgress?: (pos: number) => void }, aborted: Outcome): Promise<Outcome> {
    if (this.closed || opts.signal?.aborted) return Promise.resolve(aborted);
    const slot = this.pick();
    const id = this.nextId++;
    slot.load++;
    if (slot.load === 1) slot.worker.ref();
    return new Promise<Outcome>((resolve) => {
      const onAbort = () => slot.worker.postMessage({ type: 'abort', id });
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      this.pending.set(id, {
        slot,
        onProgress: opts.onProgress,
        resolve: (o) => {
          opts.signal?.removeEventListener('abort', onAbort);
          resolve(o);
        },
      });
      slot.worker.postMessage({ type, id, job });
    });
  }

  private pick(): Slot {
    const free = this.slots.reduce<Slot | undefined>((best, s) => (!best || s.load < best.load ? s : best), undefined);
    if (free && (free.load === 0 || this.slots.length >= this.size)) return free;
    return this.spawn();
  }

  private spawn(): Slot {
    const slot: Slot = { worker: new Worker(workerUrl('fetch-worker', import.meta.url)), load: 0 };
    slot.worker.on('message', (m: { id: number; pos?: number; outcome?: Outcome }) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      if (m.outcome) {
        this.settle(m.id, m.outcome);
      } else if (m.pos !== undefined) p.onProgress?.(m.pos);
    });
    slot.worker.on('error', (e) => this.failSlot(slot, e));
    slot.worker.on('exit', () => this.failSlot(slot, new Error('a fetch worker exited')));
    this.slots.push(slot);
    return slot;
  }

  private settle(id: number, outcome: Outcome): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    p.slot.load--;
    if (p.slot.load === 0) p.slot.worker.unref();
    p.resolve(outcome);
  }

  private failSlot(slot: Slot, e: Error): void {
    const i = this.slots.indexOf(slot);
    if (i >= 0) this.slots.splice(i, 1);
    for (const [id, p] of [...this.pending]) {
      if (p.slot === slot) this.settle(id, { kind: 'failed', message: e.message, code: 'E_FETCH_WORKER', local: true, sent: 0 });
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    const slots = this.slots.splice(0);
    for (const [id] of [...this.pending]) this.settle(id, { kind: 'failed', message: 'aborted', name: 'AbortError', code: 'ABORT_ERR', sent: 0 });
    await Promise.all(slots.map((s) => s.worker.terminate().catch(() => {})));
  }
}
