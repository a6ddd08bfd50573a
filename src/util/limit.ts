import { AbortedError, throwIfAborted } from '../errors.js';

/**
 * Run `fn` over `items` with at most `concurrency` in flight; the first failure rejects and stops new work. Results
 * are in the order of `items`. With `size`, the largest items start first (ties in list order): the long transfers
 * begin at once and the small ones fill in beside them, instead of small files listed first holding the big ones back.
 */
export async function mapLimit<T, R>(
  items: readonly T[],
  concurrency: number,
  fn: (item: T, index: number) => Promise<R>,
  opts: { size?: (item: T) => number } = {},
): Promise<R[]> {
  const results = new Array<R>(items.length);
  const order = items.map((_, i) => i);
  if (opts.size) {
    const sizes = items.map(opts.size);
    order.sort((a, b) => sizes[b] - sizes[a] || a - b);
  }
  let next = 0;
  let failed = false;
  const n = Math.max(1, Math.min(concurrency, items.length));
  const workers = Array.from({ length: n }, async () => {
    while (!failed && next < order.length) {
      const i = order[next++];
      try {
        results[i] = await fn(items[i], i);
      } catch (e) {
        failed = true;
        throw e;
      }
    }
  });
  const settled = await Promise.allSettled(workers);
  const rejected = settled.find((s) => s.status === 'rejected') as PromiseRejectedResult | undefined;
  if (rejected) throw rejected.reason;
  return results;
}

/**
 * mapLimit where the first failure stops the rest: `fn` gets a signal that fires on the first failure or when
 * `opts.signal` does, so work in flight cleans up and ends. Rethrows that first failure (AbortedError when the caller
 * aborted), once every item in flight has settled.
 */
export async function mapUntilFailure<T, R>(
  items: readonly T[],
  concurrency: number,
  fn: (item: T, signal: AbortSignal) => Promise<R>,
  opts: { size?: (item: T) => number; signal?: AbortSignal } = {},
): Promise<R[]> {
  throwIfAborted(opts.signal);
  const ctl = new AbortController();
  const onAbort = () => ctl.abort();
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  let failed = false;
  let first: unknown;
  const run = async (item: T): Promise<R> => {
    try {
      return await fn(item, ctl.signal);
    } catch (e) {
      if (!failed) {
        failed = true;
        first = e;
        ctl.abort();
      }
      throw e;
    }
  };
  try {
    return await mapLimit(items, concurrency, run, { size: opts.size });
  } catch {
    throw opts.signal?.aborted && !(first instanceof AbortedError) ? new AbortedError() : first;
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
  }
}
