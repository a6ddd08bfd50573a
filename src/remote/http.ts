/**
 * One job: send a request over an injected undici Dispatcher and hand back the response with its body unconsumed.
 * Redirects are followed here by hand (undici 7's `request()` rejects `maxRedirections`): at most 10 hops, only for
 * GET/HEAD, keeping `Accept`/`Range`, and dropping `Authorization`/`Cookie`/`Proxy-Authorization` as soon as the
 * origin changes (registry → CDN / object store). Every intermediate body is dumped.
 */
import type { Readable } from 'node:stream';
import type { IncomingHttpHeaders } from 'node:http';
import type { Dispatcher } from 'undici';
import { resolveLocation } from './url.js';

export const MAX_REDIRECTS = 10;

export interface HttpRequest {
  method: string;
  url: string;
  headers?: Record<string, string>;
  body?: Buffer | string | Readable | null;
  signal?: AbortSignal;
  /** Follow 3xx with a Location; default true for GET and HEAD, never for requests with a body. */
  followRedirects?: boolean;
  /** Read buffer size for the response body (we use ≥ 1 MiB for blob downloads). */
  highWaterMark?: number;
}

export type ResponseBody = Dispatcher.ResponseData['body'];

export interface HttpResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: ResponseBody;
  /** Final URL after redirects. */
  url: string;
  /** Method of the final hop. */
  method: string;
  /** The request headers actually sent on the final hop (after redirect stripping); used by tests and auth. */
  sentHeaders: Record<string, string>;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const ORIGIN_BOUND_HEADERS = ['authorization', 'cookie', 'proxy-authorization'];

export class TooManyRedirectsError extends Error {
  readonly code = 'E_TOO_MANY_REDIRECTS';
  constructor(readonly url: string) {
    super(`more than ${MAX_REDIRECTS} redirects`);
    this.name = 'TooManyRedirectsError';
  }
}

export async function send(dispatcher: Dispatcher, req: HttpRequest): Promise<HttpResponse> {
  const bodyless = req.body === undefined || req.body === null;
  const follow = (req.followRedirects ?? (req.method === 'GET' || req.method === 'HEAD')) && bodyless;
  let url = req.url;
  let method = req.method;
  let headers: Record<string, string> = { ...(req.headers ?? {}) };
  for (let hop = 0; ; hop++) {
    const u = new URL(url);
    const res = await dispatcher.request({
      origin: u.origin,
      path: u.pathname + u.search,
      method: method as Dispatcher.HttpMethod,
      headers,
      body: req.body ?? null,
      signal: req.signal,
      highWaterMark: req.highWaterMark,
    });
    const location = headerValue(res.headers, 'location');
    if (!follow || !REDIRECTS.has(res.statusCode) || !location) {
      return { status: res.statusCode, headers: res.headers, body: res.body, url, method, sentHeaders: headers };
    }
    await res.body.dump().catch(() => {});
    if (hop + 1 > MAX_REDIRECTS) throw new TooManyRedirectsError(url);
    const next = resolveLocation(location, url);
    if (new URL(next).origin !== u.origin) {
      // Credentials are bound to the registry's origin; a CDN or pre-signed URL carries its own authorisation.
      // Once stripped they stay stripped, even if a later hop returns to the registry.
      headers = Object.fromEntries(Object.entries(headers).filter(([k]) => !ORIGIN_BOUND_HEADERS.includes(k.toLowerCase())));
    }
    if (res.statusCode === 303 && method !== 'HEAD') method = 'GET';
    url = next;
  }
}

/** First value of a response header (names are lower-case in undici). */
export function headerValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

/** All values of a response header. */
export function headerValues(headers: IncomingHttpHeaders, name: string): string[] {
  const v = headers[name.toLowerCase()];
  if (v === undefined) return [];
  return Array.isArray(v) ? v : [v];
}

/** Media type without parameters, lower-cased. */
export function mediaTypeOf(contentType: string | undefined): string | undefined {
  const t = contentType?.split(';')[0]?.trim().toLowerCase();
  return t || undefined;
}

export interface CappedRead {
  bytes: Buffer;
  /** More bytes were available than `max`; the body was destroyed. */
  truncated: boolean;
}

/**
 * Read at most `max` bytes of a body. Past the cap the stream is destroyed (the connection is not reused), which is
 * the price of never buffering an untrusted body without bound.
 */
export async function readCapped(body: Readable, max: number): Promise<CappedRead> {
  const chunks: Buffer[] = [];
  let total = 0;
  let truncated = false;
  for await (const chunk of body) {
    const b = chunk as Buffer;
    if (total + b.length > max) {
      chunks.push(b.subarray(0, max - total));
      total = max;
      truncated = true;
      break;
    }
    chunks.push(b);
    total += b.length;
  }
  if (truncated) body.destroy();
  return { bytes: Buffer.concat(chunks, total), truncated };
}

/** Discard a body so the connection can be reused; never throws. */
export async function discard(res: { body: ResponseBody } | undefined): Promise<void> {
  if (!res) return;
  try {
    await res.body.dump();
  } catch {
    /* already consumed or destroyed */
  }
}
