/**
 * Redaction by allowlist (the go-containerregistry approach): URLs shown in errors, warnings and logs keep only the
 * protocol query keys we know to be harmless; every other value (pre-signed CDN parameters, 2.8's `_state` HMAC,
 * tokens) is replaced. Userinfo is stripped. Secrets known by value are blanked in free text.
 */

/** Query keys whose values are safe to show (distribution-spec protocol parameters). `_state` is deliberately absent. */
export const SAFE_QUERY_KEYS: ReadonlySet<string> = new Set(['scope', 'service', 'digest', 'mount', 'from', 'n', 'last', 'tag', 'artifactType']);

export const REDACTED = 'REDACTED';

/**
 * Redact a URL for display. Works on the raw string so existing encodings are kept and nothing is re-serialised;
 * a string that does not parse as a URL is returned with any `user:pass@` part removed.
 */
export function redactUrl(input: string | URL): string {
  const s = String(input);
  const hashAt = s.indexOf('#');
  const noHash = hashAt >= 0 ? s.slice(0, hashAt) : s;
  const q = noHash.indexOf('?');
  const base = stripUserinfo(q >= 0 ? noHash.slice(0, q) : noHash);
  if (q < 0) return base;
  const query = noHash.slice(q + 1);
  if (!query) return base + '?';
  const parts = query.split('&').map((pair) => {
    const eq = pair.indexOf('=');
    const rawKey = eq >= 0 ? pair.slice(0, eq) : pair;
    let key = rawKey;
    try {
      key = decodeURIComponent(rawKey.replace(/\+/g, ' '));
    } catch {
      /* keep raw */
    }
    if (eq < 0) return rawKey;
    return SAFE_QUERY_KEYS.has(key) ? pair : `${rawKey}=${REDACTED}`;
  });
  return `${base}?${parts.join('&')}`;
}

function stripUserinfo(s: string): string {
  // scheme://user:pass@host/... → scheme://host/...
  return s.replace(/^([a-zA-Z][a-zA-Z0-9+.-]*:\/\/)[^/?#@]*@/, '$1');
}

const SECRET_HEADERS = new Set(['authorization', 'proxy-authorization', 'cookie', 'set-cookie', 'x-registry-auth']);

/** Copy of a header map with credentials replaced. */
export function redactHeaders(headers: Record<string, string | string[] | undefined>): Record<string, string | string[] | undefined> {
  const out: Record<string, string | string[] | undefined> = {};
  for (const [k, v] of Object.entries(headers)) {
    if (SECRET_HEADERS.has(k.toLowerCase()) && v !== undefined) {
      const first = Array.isArray(v) ? v[0] : v;
      const scheme = /^\s*(\S+)\s/.exec(first ?? '')?.[1];
      out[k] = scheme && k.toLowerCase().includes('authorization') ? `${scheme} ${REDACTED}` : REDACTED;
    } else out[k] = v;
  }
  return out;
}

/**
 * Blank known secret values and anything that looks like a URL's sensitive parts in free text (e.g. a message
 * from a credential helper or a registry error body). Secrets shorter than 4 characters are ignored so we do not
 * blank every "a" in a message.
 */
export function redactText(text: string, secrets: ReadonlyArray<string | undefined> = []): string {
  let out = text.replace(/\bhttps?:\/\/[^\s"'<>]+/g, (u) => redactUrl(u));
  out = out.replace(/\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}/g, `$1 ${REDACTED}`);
  for (const s of secrets) {
    if (s && s.length >= 4) out = out.split(s).join(REDACTED);
  }
  return out;
}
