/**
 * `WWW-Authenticate` parsing (RFC 7235 §4.1, §2.1): several challenges per header and across headers, case-insensitive
 * schemes and parameter names, values as tokens or quoted strings with backslash escapes (commas allowed inside
 * quotes), unknown parameters kept. Pure; no IO.
 */

export interface Challenge {
  /** Lower-cased scheme: 'basic', 'bearer', … */
  scheme: string;
  /** Parameter names lower-cased; values unescaped. */
  params: Record<string, string>;
  /** token68 form (e.g. `Negotiate abc==`), rarely used by registries. */
  token68?: string;
}

const TCHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/;

export function parseChallenges(header: string | readonly string[] | undefined): Challenge[] {
  if (header === undefined) return [];
  const list = typeof header === 'string' ? [header] : header;
  const out: Challenge[] = [];
  for (const h of list) out.push(...parseOne(h));
  return out;
}

function parseOne(s: string): Challenge[] {
  const out: Challenge[] = [];
  let i = 0;
  const n = s.length;
  const skipWs = () => {
    while (i < n && (s[i] === ' ' || s[i] === '\t')) i++;
  };
  const skipWsCommas = () => {
    while (i < n && (s[i] === ' ' || s[i] === '\t' || s[i] === ',')) i++;
  };
  const readToken = (): string => {
    const start = i;
    while (i < n && TCHAR.test(s[i])) i++;
    return s.slice(start, i);
  };
  const readQuoted = (): string => {
    // s[i] === '"'
    i++;
    let v = '';
    while (i < n && s[i] !== '"') {
      if (s[i] === '\\' && i + 1 < n) i++;
      v += s[i++];
    }
    i++; // closing quote (or end)
    return v;
  };

  // Lenient: an unquoted value runs to the next comma or whitespace (some servers send unquoted realm URLs).
  const readBare = (): string => {
    const start = i;
    while (i < n && s[i] !== ',' && s[i] !== ' ' && s[i] !== '\t') i++;
    return s.slice(start, i);
  };

  let current: Challenge | undefined;
  while (i < n) {
    skipWsCommas();
    if (i >= n) break;
    const tok = readToken();
    if (!tok) {
      // garbage character: skip it
      i++;
      continue;
    }
    skipWs();
    if (current && s[i] === '=') {
      // auth-param
      i++;
      skipWs();
      const value = s[i] === '"' ? readQuoted() : readBare();
      current.params[tok.toLowerCase()] = value;
      continue;
    }
    // a new challenge: `scheme` followed by params, token68 or nothing
    current = { scheme: tok.toLowerCase(), params: {} };
    out.push(current);
    // token68 (`Negotiate abc123==`): a b64-ish token with '=' padding, then end of header or a comma. A bare word
    // without padding followed by a comma is read as the next scheme (`Basic, Bearer realm=…`); registries never
    // send unpadded token68.
    const t68 = /^[A-Za-z0-9\-._~+/]+=+[ \t]*(?:,|$)/.exec(s.slice(i));
    if (t68) {
      current.token68 = t68[0].replace(/[ \t]*,?$/, '');
      i += current.token68.length;
    }
  }
  return out;
}

/** The first challenge with the given scheme. */
export function findChallenge(challenges: readonly Challenge[], scheme: string): Challenge | undefined {
  const want = scheme.toLowerCase();
  return challenges.find((c) => c.scheme === want);
}

/** Space-separated scopes of a Bearer challenge's `scope` parameter (2.8's mount challenge carries two). */
export function challengeScopes(c: Challenge | undefined): string[] {
  const s = c?.params.scope;
  return s ? s.split(/\s+/).filter(Boolean) : [];
}
