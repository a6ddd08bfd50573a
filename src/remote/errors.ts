/**
 * Turning registry responses and transport failures into RegistryError/AuthError (src/errors.ts) that name the
 * registry, the operation ("push blob sha256:abcd…"), the HTTP status, the OCI error codes and a hint.
 * Error bodies are read up to 8 KiB (any format: JSON, HTML from proxies, text/plain 404 from 2.8's router).
 */
import { AbortedError, AuthError, RegistryError, isAbortError } from '../errors.js';
import { headerValue, readCapped, mediaTypeOf, type HttpResponse } from './http.js';
import { redactText, redactUrl } from './redact.js';
import { isRetryableNetworkError, parseRetryAfter } from './retry.js';

/** Error bodies are diagnostics only; 8 KiB is plenty for `{"errors":[…]}` and bounds hostile bodies (oras-go). */
export const MAX_ERROR_BODY = 8 * 1024;

export interface OciError {
  code: string;
  message?: string;
  detail?: unknown;
}

/** Parse an OCI error body (`{"errors":[{code,message,detail}]}`); tolerant of any other shape. */
export function parseOciErrors(body: Buffer | string): OciError[] {
  const text = typeof body === 'string' ? body : body.toString('utf8');
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    return [];
  }
  const list = Array.isArray(json?.errors) ? json.errors : json && typeof json.code === 'string' ? [json] : [];
  const out: OciError[] = [];
  for (const e of list) {
    if (!e || typeof e !== 'object') continue;
    const code = typeof e.code === 'string' ? e.code.toUpperCase() : 'UNKNOWN';
    out.push({ code, message: typeof e.message === 'string' ? e.message : undefined, detail: e.detail });
  }
  return out;
}

/** `sha256:0123456789ab…` for messages. */
export function shortDigest(d: string): string {
  const i = d.indexOf(':');
  return i >= 0 && d.length > i + 13 ? `${d.slice(0, i + 13)}…` : d;
}

const HINTS: Record<string, string> = {
  NAME_UNKNOWN: 'the repository does not exist on the registry (or you may not see it)',
  MANIFEST_UNKNOWN: 'the tag or digest does not exist in this repository',
  BLOB_UNKNOWN: 'the registry does not hold this blob; push it again',
  MANIFEST_BLOB_UNKNOWN: 'the registry is missing a blob the manifest refers to; push again',
  BLOB_UPLOAD_UNKNOWN: 'the upload session expired or was cancelled; retry the push',
  BLOB_UPLOAD_INVALID: 'the upload session is invalid (stale upload location?); retry the push',
  DIGEST_INVALID: 'the uploaded content does not match its digest; the local store may be corrupt (modctl prune, rebuild)',
  SIZE_INVALID: 'the uploaded content does not match its declared size',
  MANIFEST_INVALID: 'the registry rejected the manifest (too large, or a type it does not accept)',
  NAME_INVALID: 'invalid repository name for this registry',
  TAG_INVALID: 'invalid tag for this registry',
  DENIED: 'access denied: check that your account may push/pull this repository',
  UNAUTHORIZED: 'authentication required: run modctl login',
  UNSUPPORTED: 'the registry does not support this operation',
  TOOMANYREQUESTS: 'rate limited by the registry: wait and try again, or log in for a higher limit',
};

function hintFor(status: number, codes: string[], operation: string): string | undefined {
  for (const c of codes) if (HINTS[c]) return HINTS[c];
  if (status === 401) return undefined; // AuthError supplies its own
  if (status === 403) return HINTS.DENIED;
  if (status === 404) return operation.includes('manifest') ? HINTS.MANIFEST_UNKNOWN : 'not found on the registry';
  if (status === 413) return 'the registry refused the request as too large';
  if (status === 429) return HINTS.TOOMANYREQUESTS;
  if (status >= 500) return 'the registry had a server error; try again later';
  return undefined;
}

/** A registry answer we could not accept. Carries the Retry-After wait, when the server gave one. */
export class RegistryStatusError extends RegistryError {
  readonly retryAfterMs?: number;
  readonly url: string;
  constructor(
    registry: string,
    operation: string,
    message: string,
    opts: { status: number; ociCodes: string[]; hint?: string; retryAfterMs?: number; url: string; code?: string },
  ) {
    super(registry, operation, message, opts);
    this.retryAfterMs = opts.retryAfterMs;
    this.url = opts.url;
  }
}

/**
 * Build (and return, not throw) the error for an unexpected response, consuming at most 8 KiB of its body.
 * 401 → AuthError; everything else → RegistryStatusError. The URL is redacted.
 */
export async function errorFromResponse(registry: string, operation: string, res: HttpResponse, secrets: string[] = []): Promise<RegistryError> {
  let text = '';
  if (res.body) {
    try {
      text = (await readCapped(res.body, MAX_ERROR_BODY)).bytes.toString('utf8');
    } catch {
      text = '';
    }
  }
  const errors = parseOciErrors(text);
  const codes = [...new Set(errors.map((e) => e.code))];
  const parts: string[] = [];
  for (const e of errors.slice(0, 5)) {
    let detail = '';
    if (e.detail !== undefined && e.detail !== null && e.detail !== '') {
      const d = typeof e.detail === 'string' ? e.detail : JSON.stringify(e.detail);
      detail = ` (${d.length > 200 ? d.slice(0, 200) + '…' : d})`;
    }
    parts.push(`${e.code}${e.message ? `: ${e.message}` : ''}${detail}`);
  }
  if (!parts.length) {
    const ct = mediaTypeOf(headerValue(res.headers, 'content-type'));
    const snippet = text.replace(/\s+/g, ' ').trim();
    if (snippet && ct !== 'text/html' && !/^<!doctype|^<html/i.test(snippet)) {
      parts.push(snippet.length > 200 ? snippet.slice(0, 200) + '…' : snippet);
    }
  }
  const head = res.method === 'HEAD' ? ' (HEAD responses carry no error body)' : '';
  const what = parts.length ? `: ${parts.join('; ')}` : head;
  const message = redactText(`${statusText(res.status)} (HTTP ${res.status}) from ${redactUrl(res.url)}${what}`, secrets);
  if (res.status === 401) {
    return new AuthError(registry, operation, message, { status: res.status, ociCodes: codes });
  }
  return new RegistryStatusError(registry, operation, message, {
    status: res.status,
    ociCodes: codes,
    hint: hintFor(res.status, codes, operation),
    retryAfterMs: parseRetryAfter(headerValue(res.headers, 'retry-after')),
    url: redactUrl(res.url),
    code: res.status === 403 ? 'E_DENIED' : res.status === 404 ? 'E_NOT_FOUND' : undefined,
  });
}

function statusText(status: number): string {
  const t: Record<number, string> = {
    400: 'bad request',
    401: 'unauthorized',
    403: 'forbidden',
    404: 'not found',
    405: 'method not allowed',
    409: 'conflict',
    413: 'payload too large',
    416: 'range not satisfiable',
    429: 'too many requests',
    500: 'internal server error',
    502: 'bad gateway',
    503: 'service unavailable',
    504: 'gateway timeout',
  };
  return t[status] ?? 'unexpected response';
}

/** A transport failure (connection refused, TLS, reset, timeout) as a RegistryError with a useful hint. */
export function errorFromNetwork(registry: string, operation: string, err: unknown, url?: string): RegistryError | AbortedError {
  if (err instanceof RegistryError || err instanceof AbortedError) return err;
  if (isAbortError(err)) return new AbortedError();
  const e = err as { code?: string; message?: string; cause?: { code?: string; message?: string } };
  const code = e?.code ?? e?.cause?.code;
  const msg = [e?.message, e?.cause?.message].filter(Boolean).join(': ') || String(err);
  let hint: string | undefined;
  if (/wrong version number|EPROTO|packet length too long/i.test(msg)) hint = 'the registry may speak plain HTTP: use --plain-http';
  else if (/certificate|self[- ]signed|CERT_|unable to verify/i.test(msg + (code ?? ''))) hint = 'the registry certificate is not trusted: pass --ca-file, or --insecure to skip verification';
  else if (code === 'ECONNREFUSED') hint = 'nothing is listening there: check the registry address and port';
  else if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') hint = 'the registry host name does not resolve';
  else if (isRetryableNetworkError(err)) hint = 'the connection failed repeatedly; check the network and try again';
  const where = url ? ` (${redactUrl(url)})` : '';
  return new RegistryError(registry, operation, redactText(`${msg}${code && !msg.includes(code) ? ` [${code}]` : ''}${where}`), {
    cause: err,
    hint,
    code: 'E_REGISTRY_UNREACHABLE',
  });
}
