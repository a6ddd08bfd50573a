import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AbortedError } from '../../../src/errors.js';
import { DEFAULT_RETRY_POLICY, backoffMs, isRetryableNetworkError, parseRetryAfter, retryDecision, retryPolicyFromEnv, sleep } from '../../../src/remote/retry.js';

const P = DEFAULT_RETRY_POLICY;
const mid = () => 0.5;

test('retryPolicyFromEnv: defaults and overrides', () => {
  assert.deepEqual(retryPolicyFromEnv({}), P);
  const p = retryPolicyFromEnv({ MODCTL_RETRY_BASE_MS: '1' });
  assert.equal(p.baseMs, 1);
  assert.equal(p.maxAttempts, 6);
  assert.equal(retryPolicyFromEnv({ MODCTL_RETRY_BASE_MS: 'nope' }).baseMs, 500);
  assert.equal(retryPolicyFromEnv({ MODCTL_RETRY_ATTEMPTS: '2' }).maxAttempts, 2);
});

const table: Array<{ name: string; attempt: number; outcome: Parameters<typeof retryDecision>[2]; retry: boolean; delay?: number }> = [
  { name: '503 first attempt', attempt: 1, outcome: { status: 503 }, retry: true, delay: 375 },
  { name: '502 third attempt', attempt: 3, outcome: { status: 502 }, retry: true, delay: 1500 },
  { name: '504', attempt: 1, outcome: { status: 504 }, retry: true, delay: 375 },
  { name: 'cap at 30 s', attempt: 5, outcome: { status: 503 }, retry: true, delay: 6000 },
  { name: 'last attempt', attempt: 6, outcome: { status: 503 }, retry: false },
  { name: '429 Retry-After seconds', attempt: 1, outcome: { status: 429, retryAfter: '3' }, retry: true, delay: 3000 },
  { name: '429 Retry-After 0 still waits a little', attempt: 1, outcome: { status: 429, retryAfter: '0' }, retry: true, delay: 375 },
  { name: '429 Retry-After date', attempt: 1, outcome: { status: 429, retryAfter: new Date(1_000_000 + 7000).toUTCString() }, retry: true, delay: 7000 },
  { name: '429 Retry-After too long', attempt: 1, outcome: { status: 429, retryAfter: '3600' }, retry: false },
  { name: '429 without Retry-After', attempt: 2, outcome: { status: 429 }, retry: true, delay: 750 },
  { name: '400 final', attempt: 1, outcome: { status: 400 }, retry: false },
  { name: '401 final (auth layer handles it)', attempt: 1, outcome: { status: 401 }, retry: false },
  { name: '404 final', attempt: 1, outcome: { status: 404 }, retry: false },
  { name: '500 final', attempt: 1, outcome: { status: 500 }, retry: false },
  { name: 'ECONNRESET', attempt: 1, outcome: { error: Object.assign(new Error('x'), { code: 'ECONNRESET' }) }, retry: true, delay: 375 },
  { name: 'undici socket error in cause', attempt: 1, outcome: { error: new Error('fetch failed', { cause: Object.assign(new Error('other side closed'), { code: 'UND_ERR_SOCKET' }) }) }, retry: true, delay: 375 },
  { name: 'abort is final', attempt: 1, outcome: { error: new AbortedError() }, retry: false },
  { name: 'programming error is final', attempt: 1, outcome: { error: new TypeError('x is undefined') }, retry: false },
];
for (const c of table) {
  test(`retryDecision: ${c.name}`, () => {
    const d = retryDecision(P, c.attempt, c.outcome, 1_000_000, mid);
    assert.equal(d.retry, c.retry, JSON.stringify(d));
    if (d.retry && c.delay !== undefined) assert.equal(d.delayMs, c.delay);
  });
}

test('backoff jitter stays within [d/2, d]', () => {
  for (let a = 1; a <= 8; a++) {
    const d = Math.min(P.capMs, P.baseMs * 2 ** (a - 1));
    assert.equal(backoffMs(P, a, () => 0), d / 2);
    assert.equal(backoffMs(P, a, () => 1), d);
  }
});

test('parseRetryAfter', () => {
  assert.equal(parseRetryAfter('120'), 120_000);
  assert.equal(parseRetryAfter(undefined), undefined);
  assert.equal(parseRetryAfter('soon'), undefined);
  assert.equal(parseRetryAfter('Wed, 21 Oct 2015 07:28:00 GMT', Date.parse('Wed, 21 Oct 2015 07:27:00 GMT')), 60_000);
  assert.equal(parseRetryAfter('Wed, 21 Oct 2015 07:28:00 GMT', Date.parse('Wed, 21 Oct 2015 08:00:00 GMT')), 0);
});

test('isRetryableNetworkError', () => {
  assert.ok(isRetryableNetworkError(Object.assign(new Error('t'), { code: 'UND_ERR_HEADERS_TIMEOUT' })));
  assert.ok(!isRetryableNetworkError(Object.assign(new Error('t'), { code: 'ENOTFOUND' })));
  assert.ok(!isRetryableNetworkError(Object.assign(new Error('aborted'), { name: 'AbortError' })));
});

test('sleep is abortable', async () => {
  const ac = new AbortController();
  const p = sleep(10_000, ac.signal);
  ac.abort();
  await assert.rejects(p, AbortedError);
  await assert.rejects(sleep(1, ac.signal), AbortedError);
});
