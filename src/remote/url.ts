/** URL helpers for the distribution protocol. Pure; no IO. */

/**
 * Append `digest=<d>` to an upload Location by string concatenation (`?` or `&`), never re-serialising the existing
 * query: pre-signed URLs and 2.8's `_state` HMAC must reach the server byte-for-byte (registry-client.md §5.2).
 */
export function appendDigestQuery(location: string, digest: string): string {
  return appendQuery(location, 'digest', digest);
}

export function appendQuery(url: string, key: string, value: string): string {
  const hashAt = url.indexOf('#');
  const base = hashAt >= 0 ? url.slice(0, hashAt) : url;
  const q = base.indexOf('?');
  let sep: string;
  if (q < 0) sep = '?';
  else if (q === base.length - 1 || base.endsWith('&')) sep = '';
  else sep = '&';
  return `${base}${sep}${encodeURIComponent(key)}=${encodeURIComponent(value)}`;
}

/** Resolve a (possibly relative) `Location` or `Link` target against the URL of the request that returned it. */
export function resolveLocation(location: string, requestUrl: string): string {
  return new URL(location.trim(), requestUrl).href;
}

export function originOf(url: string): string {
  return new URL(url).origin;
}

export function sameOrigin(a: string, b: string): boolean {
  try {
    return new URL(a).origin === new URL(b).origin;
  } catch {
    return false;
  }
}

/**
 * The `rel="next"` target of an RFC 8288 `Link` header (one or several headers, several links per header),
 * unresolved. Returns undefined when there is none.
 */
export function parseLinkNext(header: string | readonly string[] | undefined): string | undefined {
  if (!header) return undefined;
  const values = typeof header === 'string' ? [header] : header;
  for (const v of values) {
    const re = /<([^>]*)>\s*((?:;\s*[^;,]*)*)/g;
    let m: RegExpExecArray | null;
    while ((m = re.exec(v))) {
      const params = m[2];
      const rel = /;\s*rel\s*=\s*(?:"([^"]*)"|([^\s;,]+))/i.exec(params);
      const rels = (rel?.[1] ?? rel?.[2] ?? '').toLowerCase().split(/\s+/);
      if (rels.includes('next')) return m[1];
    }
  }
  return undefined;
}
