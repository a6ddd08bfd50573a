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
