/**
 * Registry authentication (registry-client.md §10), as a helper the RegistryClient consults around each request:
 * `authorization(scopes)` gives the header to send (cached token, Basic, or nothing), and `onUnauthorized(...)` learns
 * from a 401's challenges and says whether a replay can help. Bearer tokens come from the realm by GET (Basic creds or
 * anonymous) or, when we hold an identity token, by OAuth2 POST with a GET fallback on 404/405. Tokens are cached per
 * realm + service + scope set and honour `expires_in` (minimum and default 60 s). Never loops: the caller allows at
 * most two auth rounds per request.
 */
import type { Dispatcher } from 'undici';
import { AuthError, RegistryError, throwIfAborted } from '../../errors.js';
import { send, readCapped, discard, type HttpResponse } from '../http.js';
import { errorFromNetwork, errorFromResponse } from '../errors.js';
import { retryDecision, sleep, type RetryPolicy } from '../retry.js';
import { parseChallenges, findChallenge, challengeScopes, type Challenge } from './challenge.js';
import { mergeScopes, scopesCover } from './scope.js';
import type { Credentials } from './credentials.js';

/** Token responses are small JSON documents; 128 KiB bounds a hostile endpoint (oras-go's limit). */
export const MAX_TOKEN_RESPONSE = 128 * 1024;
/** Docker's default when `expires_in` is absent, and the floor for smaller values. */
export const MIN_TOKEN_TTL_S = 60;
/** Refresh this long before expiry so a token does not die mid-request. */
const EXPIRY_SLACK_MS = 15_000;
export const OAUTH_CLIENT_ID = 'modctl';

export interface AuthenticatorOptions {
  registry: string;
  dispatcher: Dispatcher;
  userAgent: string;
  credentials: () => Promise<Credentials | undefined>;
  policy: RetryPolicy;
  signal?: AbortSignal;
  /** Origin of the registry API; Basic credentials are only ever attached to requests for it. */
  registryOrigin: string;
  now?: () => number;
}

type Scheme = { type: 'none' } | { type: 'basic' } | { type: 'bearer'; realm: string; service?: string };

interface CachedToken {
  realm: string;
  service?: string;
  scopes: string[];
  token: string;
  expiresAt: number;
}

export class Authenticator {
  private scheme?: Scheme;
  private tokens: CachedToken[] = [];
  private readonly inflight = new Map<string, Promise<CachedToken>>();
  private credsPromise?: Promise<Credentials | undefined>;
  private readonly now: () => number;
  /** Secrets seen so far, blanked in every message. */
  readonly secrets: string[] = [];

  constructor(private readonly opts: AuthenticatorOptions) {
    this.now = opts.now ?? Date.now;
  }

  /** Whether we already know how this registry authenticates. */
  get known(): boolean {
    return this.scheme !== undefined;
  }

  /** Mark the registry as open (GET /v2/ answered 200 without credentials). */
  markOpen(): void {
    if (!this.scheme) this.scheme = { type: 'none' };
  }

  credentials(): Promise<Credentials | undefined> {
    this.credsPromise ??= this.opts.credentials().then((c) => {
      for (const s of [c?.password, c?.identityToken, c?.registryToken]) if (s) this.secrets.push(s);
      return c;
    });
    return this.credsPromise;
  }

  /** The Authorization header value for a request to the registry needing `scopes`, if any. */
  async authorization(scopes: readonly string[]): Promise<string | undefined> {
    const scheme = this.scheme;
    if (!scheme || scheme.type === 'none') return undefined;
    const creds = await this.credentials();
    if (scheme.type === 'basic') {
      if (creds?.username && creds.password !== undefined) return basicHeader(creds.username, creds.password);
      return undefined;
    }
    if (creds?.registryToken) return `Bearer ${creds.registryToken}`;
    const t = await this.token(scheme.realm, scheme.service, mergeScopes(scopes), creds);
    return `Bearer ${t.token}`;
  }

  /**
   * Learn from a 401. Returns the scope set to replay with, or undefined when a replay cannot succeed (no usable
   * challenge, wrong Basic credentials, a token that already had every scope asked for).
   */
  async onUnauthorized(wwwAuthenticate: string[], scopes: readonly string[], sent: string | undefined): Promise<string[] | undefined> {
    const challenges = parseChallenges(wwwAuthenticate);
    const bearer = findChallenge(challenges, 'bearer');
    const basic = findChallenge(challenges, 'basic');
    if (bearer?.params.realm) {
      const realm = resolveRealm(bearer, this.opts.registryOrigin);
      if (!realm) return undefined;
      this.scheme = { type: 'bearer', realm, service: bearer.params.service };
      const wanted = mergeScopes(scopes, challengeScopes(bearer));
      if (sent?.startsWith('Bearer ')) {
        const tok = sent.slice(7);
        const had = this.tokens.find((t) => t.token === tok);
        this.tokens = this.tokens.filter((t) => t.token !== tok);
        const creds = await this.credentials();
        if (creds?.registryToken && tok === creds.registryToken) return undefined;
        if (bearer.params.error !== 'invalid_token' && had && scopesCover(had.scopes, wanted)) return undefined;
      }
      return wanted;
    }
    if (basic) {
      this.scheme = { type: 'basic' };
      if (sent?.startsWith('Basic ')) return undefined;
      const creds = await this.credentials();
      if (!creds?.username || creds.password === undefined) return undefined;
      return [...scopes];
    }
    return undefined;
  }

  private async token(realm: string, service: string | undefined, scopes: string[], creds: Credentials | undefined): Promise<CachedToken> {
    const now = this.now();
    const hit = this.tokens.find(
      (t) => t.realm === realm && t.service === service && t.expiresAt - EXPIRY_SLACK_MS > now && scopesCover(t.scopes, scopes),
    );
    if (hit) return hit;
    const key = `${realm}\u0000${service ?? ''}\u0000${scopes.join(' ')}`;
    let p = this.inflight.get(key);
    if (!p) {
      p = this.fetchToken(realm, service, scopes, creds).finally(() => this.inflight.delete(key));
      this.inflight.set(key, p);
    }
    const t = await p;
    this.tokens = this.tokens.filter((x) => x.expiresAt > this.now());
    if (!this.tokens.includes(t)) this.tokens.push(t);
    return t;
  }

  private async fetchToken(realm: string, service: string | undefined, scopes: string[], creds: Credentials | undefined): Promise<CachedToken> {
    let res: HttpResponse;
    if (creds?.identityToken) {
      res = await this.tokenRequest(() => oauthPostRequest(realm, service, scopes, creds.identityToken!));
      if (res.status === 404 || res.status === 405) {
        // The endpoint only speaks the distribution GET form (registry-client.md §10.2).
        await discard(res);
        res = await this.tokenRequest(() => getTokenRequest(realm, service, scopes, creds));
      }
    } else {
      res = await this.tokenRequest(() => getTokenRequest(realm, service, scopes, creds));
    }
    if (res.status !== 200) {
      const err = await errorFromResponse(this.opts.registry, 'fetch token', res, this.secrets);
      if (res.status === 401 || res.status === 403) {
        const who = creds?.username || creds?.identityToken ? 'the stored credentials were rejected' : 'anonymous access was refused';
        throw new AuthError(this.opts.registry, 'fetch token', `${who} by the token service: ${err.message.replace(/^.*?: fetch token: /, '')}`, {
          status: res.status,
          ociCodes: err.ociCodes,
          hint: creds ? `check your credentials: modctl login ${this.opts.registry}` : `log in first: modctl login ${this.opts.registry}`,
        });
      }
      throw err;
    }
    const { bytes, truncated } = await readCapped(res.body, MAX_TOKEN_RESPONSE);
    if (truncated) throw new RegistryError(this.opts.registry, 'fetch token', `token response larger than ${MAX_TOKEN_RESPONSE} bytes`);
    let json: any;
    try {
      json = JSON.parse(bytes.toString('utf8'));
    } catch {
      throw new RegistryError(this.opts.registry, 'fetch token', 'the token service returned malformed JSON');
    }
    const token = (typeof json?.access_token === 'string' && json.access_token) || (typeof json?.token === 'string' && json.token) || '';
    if (!token) throw new RegistryError(this.opts.registry, 'fetch token', 'the token service returned no token');
    this.secrets.push(token);
    if (typeof json.refresh_token === 'string' && json.refresh_token) this.secrets.push(json.refresh_token);
    let ttl = Number(json.expires_in);
    if (!Number.isFinite(ttl) || ttl < MIN_TOKEN_TTL_S) ttl = MIN_TOKEN_TTL_S;
    return { realm, service, scopes, token, expiresAt: this.now() + ttl * 1000 };
  }

  /** One token-endpoint exchange with the usual retry policy for transient failures. */
  private async tokenRequest(build: () => { url: string; method: string; headers: Record<string, string>; body?: string }): Promise<HttpResponse> {
    for (let attempt = 1; ; attempt++) {
      throwIfAborted(this.opts.signal);
      const r = build();
      let res: HttpResponse;
      try {
        res = await send(this.opts.dispatcher, {
          method: r.method,
          url: r.url,
          headers: { 'user-agent': this.opts.userAgent, accept: 'application/json', ...r.headers },
          body: r.body,
          signal: this.opts.signal,
        });
      } catch (e) {
        const d = retryDecision(this.opts.policy, attempt, { error: e });
        if (!d.retry) throw errorFromNetwork(this.opts.registry, 'fetch token', e, r.url);
        await sleep(d.delayMs, this.opts.signal);
        continue;
      }
      const d = retryDecision(this.opts.policy, attempt, { status: res.status, retryAfter: res.headers['retry-after'] });
      if (!d.retry) return res;
      await discard(res);
      await sleep(d.delayMs, this.opts.signal);
    }
  }
}

export function basicHeader(username: string, password: string): string {
  return 'Basic ' + Buffer.from(`${username}:${password}`, 'utf8').toString('base64');
}

function resolveRealm(c: Challenge, registryOrigin: string): string | undefined {
  try {
    const u = new URL(c.params.realm, registryOrigin);
    return u.protocol === 'https:' || u.protocol === 'http:' ? u.href : undefined;
  } catch {
    return undefined;
  }
}

/** Distribution token GET: `<realm>?service=…&scope=…&scope=…` (one `scope` per scope), Basic when we have a password. */
export function getTokenRequest(realm: string, service: string | undefined, scopes: readonly string[], creds: Credentials | undefined) {
  const q: string[] = [];
  if (service) q.push(`service=${encodeURIComponent(service)}`);
  for (const s of scopes) q.push(`scope=${encodeURIComponent(s)}`);
  const headers: Record<string, string> = {};
  if (creds?.username && creds.password !== undefined && creds.password !== '') {
    q.push(`account=${encodeURIComponent(creds.username)}`);
    headers.authorization = basicHeader(creds.username, creds.password);
  }
  const sep = realm.includes('?') ? (realm.endsWith('?') || realm.endsWith('&') ? '' : '&') : '?';
  return { method: 'GET', url: q.length ? `${realm}${sep}${q.join('&')}` : realm, headers };
}

/** OAuth2 refresh-token grant (form POST), as Docker does when holding an identity token. */
export function oauthPostRequest(realm: string, service: string | undefined, scopes: readonly string[], refreshToken: string) {
  const form = new URLSearchParams();
  form.set('grant_type', 'refresh_token');
  form.set('refresh_token', refreshToken);
  if (service) form.set('service', service);
  form.set('client_id', OAUTH_CLIENT_ID);
  if (scopes.length) form.set('scope', scopes.join(' '));
  return { method: 'POST', url: realm, headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: form.toString() };
}
