/**
 * Retry policy as a pure function of (attempt, outcome), in the shape of oras-go's `retry.Policy`, plus an abortable
 * sleep. Only replayable requests are retried by the caller (bodiless, Buffer bodies, or a body factory that reopens
 * the file at the right offset) — undici cannot replay a consumed stream.
 *
 * - Network errors (reset, refused, timeouts, TLS hiccups mid-stream) and 429/502/503/504 are retried.
 * - Every other 4xx/5xx is final (401 is handled by the auth layer, not here).
 * - Exponential backoff with "equal jitter": delay in [d/2, d] where d = min(cap, base·2^(attempt−1)).
 * - 429/503 `Retry-After` (seconds or HTTP-date) is honoured; a server asking for more than `maxRetryAfterMs`
 *   (e.g. Docker Hub's hours-long rate-limit windows) is not waited for: the error is reported instead.
 */
import { AbortedError } from '../errors.js';

export interface RetryPolicy {
  /** Total attempts including the first. */
  maxAttempts: number;
  baseMs: number;
  capMs: number;
  /** Longest Retry-After we are willing to sleep through. */
  maxRetryAfterMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = { maxAttempts: 6, baseMs: 500, capMs: 30_000, maxRetryAfterMs: 60_000 };

/** The policy, with MODCTL_RETRY_BASE_MS / MODCTL_RETRY_CAP_MS / MODCTL_RETRY_ATTEMPTS overrides (tests use 1 ms). */
export function retryPolicyFromEnv(env: NodeJS.ProcessEnv = process.env): RetryPolicy {
  const num = (v: string | undefined, min: number): number | undefined => {
    if (v === undefined || v.trim() === '') return undefined;
    const n = Number(v);
    return Number.isFinite(n) && n >= min ? n : undefined;
  };
  const baseMs = num(env.MODCTL_RETRY_BASE_MS, 0) ?? DEFAULT_RETRY_POLICY.baseMs;
  const capMs = num(env.MODCTL_RETRY_CAP_MS, 0) ?? Math.max(DEFAULT_RETRY_POLICY.capMs, baseMs);
  const maxAttempts = Math.floor(num(env.MODCTL_RETRY_ATTEMPTS, 1) ?? DEFAULT_RETRY_POLICY.maxAttempts);
  return { maxAttempts, baseMs, capMs, maxRetryAfterMs: DEFAULT_RETRY_POLICY.maxRetryAfterMs };
}

export const RETRYABLE_STATUSES: ReadonlySet<number> = new Set([429, 502, 503, 504]);

const NETWORK_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'ENETDOWN',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_CLOSED',
  'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
  'ERR_STREAM_PREMATURE_CLOSE',
]);

/** True for transport failures worth another attempt. Walks `cause` chains (undici wraps socket errors). */
export function isRetryableNetworkError(err: unknown): boolean {
  for (let e = err as any, depth = 0; e && depth < 5; e = e.cause, depth++) {
    if (e.name === 'AbortError' || e instanceof AbortedError) return false;
    if (typeof e.code === 'string' && NETWORK_CODES.has(e.code)) return true;
    if (e.name === 'SocketError' || e.name === 'ConnectTimeoutError' || e.name === 'HeadersTimeoutError' || e.name === 'BodyTimeoutError') return true;
    if (e.code === undefined && /socket hang up|other side closed|terminated/i.test(String(e.message ?? ''))) return true;
  }
  return false;
}

/**
 * Parse `Retry-After`: delta-seconds or an HTTP-date. Returns milliseconds (≥ 0) or undefined when absent/invalid.
 */
export function parseRetryAfter(value: string | string[] | undefined, now: number = Date.now()): number | undefined {
  const v = (Array.isArray(value) ? value[0] : value)?.trim();
  if (!v) return undefined;
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const t = Date.parse(v);
  if (Number.isNaN(t)) return undefined;
  return Math.max(0, t - now);
}

export interface RetryOutcome {
  status?: number;
  error?: unknown;
  /** Raw Retry-After header of the response, when any. */
  retryAfter?: string | string[];
}

export type RetryDecision = { retry: false; reason: string } | { retry: true; delayMs: number };

/** Backoff for attempt `n` (1-based count of attempts already made), jittered into [d/2, d]. */
export function backoffMs(policy: RetryPolicy, attempt: number, random: () => number = Math.random): number {
  const d = Math.min(policy.capMs, policy.baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(d / 2 + random() * (d / 2));
}

/**
 * Decide whether to try again after `attempt` attempts (1-based) ended with `outcome`. Pure apart from `now`/`random`.
 */
export function retryDecision(
  policy: RetryPolicy,
  attempt: number,
  outcome: RetryOutcome,
  now: number = Date.now(),
  random: () => number = Math.random,
): RetryDecision {
  if (outcome.error !== undefined) {
    if (!isRetryableNetworkError(outcome.error)) return { retry: false, reason: 'not a transient network error' };
  } else if (outcome.status === undefined || !RETRYABLE_STATUSES.has(outcome.status)) {
    return { retry: false, reason: `status ${outcome.status} is final` };
  }
  if (attempt >= policy.maxAttempts) return { retry: false, reason: `gave up after ${attempt} attempts` };
  let delayMs = backoffMs(policy, attempt, random);
  if (outcome.error === undefined && (outcome.status === 429 || outcome.status === 503)) {
    const ra = parseRetryAfter(outcome.retryAfter, now);
    if (ra !== undefined) {
      if (ra > policy.maxRetryAfterMs) return { retry: false, reason: `server asked to wait ${Math.ceil(ra / 1000)} s` };
      delayMs = Math.max(ra, Math.min(delayMs, policy.baseMs));
    }
  }
  return { retry: true, delayMs };
}

/** Sleep that rejects with AbortedError as soon as `signal` fires. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.reject(new AbortedError());
  if (ms <= 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(new AbortedError());
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
