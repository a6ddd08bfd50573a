import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mapLimit } from '../../../src/util/limit.js';

test('mapLimit with size starts the largest items first and returns results in list order', async () => {
  const sizes = [10, 5_000, 1, 700, 5_000, 3];
  const started: number[] = [];
  const out = await mapLimit(
    sizes,
    2,
    async (s, i) => {
      started.push(i);
      await new Promise((r) => setTimeout(r, 1));
      return s * 2;
    },
    { size: (s) => s },
  );
  assert.deepEqual(started, [1, 4, 3, 0, 5, 2], 'by size, ties in list order');
  assert.deepEqual(out, sizes.map((s) => s * 2));
});

test('mapLimit without size keeps list order, at most `concurrency` in flight', async () => {
  const started: number[] = [];
  let inFlight = 0;
  let peak = 0;
  await mapLimit([1, 2, 3, 4, 5], 2, async (_, i) => {
    started.push(i);
    peak = Math.max(peak, ++inFlight);
    await new Promise((r) => setTimeout(r, 2));
    inFlight--;
  });
  assert.deepEqual(started, [0, 1, 2, 3, 4]);
  assert.equal(peak, 2);
});

test('mapLimit stops starting work after the first failure', async () => {
  const started: number[] = [];
  await assert.rejects(
    mapLimit([1, 2, 3, 4, 5, 6], 1, async (_, i) => {
      started.push(i);
      if (i === 1) throw new Error('boom');
    }),
    /boom/,
  );
  assert.deepEqual(started, [0, 1]);
});
