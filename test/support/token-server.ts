/**
 * A Docker/distribution token server for tests, listening on 127.0.0.1 with a free port.
 *
 * - `GET <url>?service=<svc>&scope=<s1>&scope=<s2>[&offline_token=true&client_id=…]` with optional Basic auth.
 * - `POST <url>` (`application/x-www-form-urlencoded`): `grant_type=password` (+ `username`, `password`) or
 *   `grant_type=refresh_token` (+ `refresh_token`), `client_id` (required), `service`, one space-joined `scope`,
 *   `access_type=offline` for a refresh token.
 * - Answers `{token, access_token, expires_in, issued_at[, refresh_token][, scope]}` with an ES256 JWT whose header
 *   carries `x5c` = the DER of a self-signed certificate (the registry's `rootcertbundle`).
 * - Known users get every action they ask for; anonymous requests get only `pull`; a wrong password → 401.
 */
import { createPrivateKey, randomBytes, randomUUID, sign, X509Certificate, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { generateSigningCert } from './tls.js';

export interface TokenServerOptions {
  /** username → password. Default: none (anonymous only). */
  users?: Record<string, string>;
  /** Expected `service` (also the JWT `aud`). Default `test-registry`. */
  service?: string;
  /** JWT `iss`. Default `test-issuer`. */
  issuer?: string;
  /** `expires_in` in seconds and JWT lifetime. Default 300. */
  expiresIn?: number;
  /** Make POST answer 404 (a GET-only token endpoint, like many registries). */
  postNotFound?: boolean;
  /** Which token fields to include in responses. Default 'both'. */
  tokenFields?: 'both' | 'token' | 'access_token';
  /** Existing directory for the signing key and certificate. Default: a fresh temp dir (removed by stop()). */
  dir?: string;
}

export interface TokenRequestRecord {
  method: string;
  /** Path of the request (normally `/token`). */
  path: string;
  query: URLSearchParams;
  /** Parsed form body of a POST. */
  form?: URLSearchParams;
  /** Raw `Authorization` header, if any. */
  authorization?: string;
  /** Status the server answered with. */
  status: number;
}

export interface TokenServer {
  /** The token endpoint (the registry's realm), e.g. `http://127.0.0.1:PORT/token`. */
  url: string;
  service: string;
  issuer: string;
  requests: TokenRequestRecord[];
  /** PEM self-signed certificate: give it to the registry as `rootcertbundle`. */
  certFile: string;
  keyFile: string;
  stop(): Promise<void>;
}

interface Access {
  type: string;
  name: string;
  actions: string[];
}

const b64url = (b: Buffer | string): string => Buffer.from(b).toString('base64url');

/** Parses `type[(class)]:name:actions` (name may contain one `:` → split type at first, actions at last colon). */
export function parseScope(scope: string): Access | undefined {
  const first = scope.indexOf(':');
  const last = scope.lastIndexOf(':');
  if (first <= 0 || last <= first) return undefined;
  const type = scope.slice(0, first);
  const name = scope.slice(first + 1, last);
  const actions = scope
    .slice(last + 1)
    .split(',')
    .map((a) => a.trim())
    .filter((a) => a !== '');
  if (name === '') return undefined;
  return { type, name, actions };
}

function grant(scopes: string[], user: string | undefined): Access[] {
  const out: Access[] = [];
  for (const s of scopes) {
    const a = parseScope(s);
    if (!a) continue;
    let actions: string[];
    if (user !== undefined) {
      actions = [...new Set(a.actions)];
    } else {
      actions = a.type === 'repository' && (a.actions.includes('pull') || a.actions.includes('*')) ? ['pull'] : [];
    }
    if (actions.length === 0) continue;
    const existing = out.find((o) => o.type === a.type && o.name === a.name);
    if (existing) existing.actions = [...new Set([...existing.actions, ...actions])];
    else out.push({ type: a.type, name: a.name, actions });
  }
  return out;
}

function readBody(req: IncomingMessage, limit = 64 * 1024): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        reject(new Error('body too large'));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

export async function startTokenServer(opts: TokenServerOptions = {}): Promise<TokenServer> {
  const service = opts.service ?? 'test-registry';
  const issuer = opts.issuer ?? 'test-issuer';
  const expiresIn = opts.expiresIn ?? 300;
  const users = opts.users ?? {};
  const tokenFields = opts.tokenFields ?? 'both';

  const signing = await generateSigningCert(opts.dir !== undefined ? { dir: opts.dir } : {});
  let key: KeyObject;
  let x5c: string;
  try {
    key = createPrivateKey(await readFile(signing.keyFile));
    x5c = new X509Certificate(await readFile(signing.certFile)).raw.toString('base64');
  } catch (err) {
    await signing.cleanup();
    throw err;
  }

  const refreshTokens = new Map<string, string>(); // refresh token → user
  const requests: TokenRequestRecord[] = [];

  const makeJwt = (sub: string, access: Access[]): { jwt: string; issuedAt: Date } => {
    const now = Math.floor(Date.now() / 1000);
    const header = { typ: 'JWT', alg: 'ES256', x5c: [x5c] };
    const claims = {
      iss: issuer,
      sub,
      aud: service, // a string: 2.8 fails to decode an array here
      exp: now + expiresIn,
      nbf: now - 1,
      iat: now,
      jti: randomUUID(),
      access,
    };
    const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const sig = sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
    return { jwt: `${input}.${b64url(sig)}`, issuedAt: new Date(now * 1000) };
  };

  const send = (res: ServerResponse, rec: TokenRequestRecord, status: number, body: unknown, headers: Record<string, string> = {}): void => {
    rec.status = status;
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
    res.end(text);
  };

  const unauthorized = (res: ServerResponse, rec: TokenRequestRecord, message: string): void =>
    send(res, rec, 401, { errors: [{ code: 'UNAUTHORIZED', message, detail: null }] }, { 'www-authenticate': 'Basic realm="token"' });

  const issue = (res: ServerResponse, rec: TokenRequestRecord, user: string | undefined, scopes: string[], withRefresh: boolean, scopeEcho?: string): void => {
    const access = grant(scopes, user);
    const { jwt, issuedAt } = makeJwt(user ?? '', access);
    const body: Record<string, unknown> = {};
    if (tokenFields !== 'access_token') body.token = jwt;
    if (tokenFields !== 'token') body.access_token = jwt;
    body.expires_in = expiresIn;
    body.issued_at = issuedAt.toISOString();
    if (withRefresh && user !== undefined) {
      const rt = randomBytes(24).toString('base64url');
      refreshTokens.set(rt, user);
      body.refresh_token = rt;
    }
    if (scopeEcho !== undefined) body.scope = scopeEcho;
    send(res, rec, 200, body);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const u = new URL(req.url ?? '/', 'http://127.0.0.1');
    const rec: TokenRequestRecord = {
      method: req.method ?? '',
      path: u.pathname,
      query: u.searchParams,
      status: 0,
    };
    if (req.headers.authorization !== undefined) rec.authorization = req.headers.authorization;
    requests.push(rec);

    if (u.pathname !== '/token') {
      send(res, rec, 404, { errors: [{ code: 'NOT_FOUND', message: 'not found' }] });
      return;
    }

    if (req.method === 'GET') {
      const svc = u.searchParams.get('service');
      if (svc !== null && svc !== service) {
        send(res, rec, 400, { errors: [{ code: 'DENIED', message: `unknown service ${svc}` }] });
        return;
      }
      let user: string | undefined;
      const auth = req.headers.authorization;
      if (auth !== undefined) {
        const m = /^basic\s+(\S+)$/i.exec(auth.trim());
        if (!m) {
          unauthorized(res, rec, 'unsupported authorization scheme');
          return;
        }
        const decoded = Buffer.from(m[1], 'base64').toString('utf8');
        const i = decoded.indexOf(':');
        const name = i < 0 ? decoded : decoded.slice(0, i);
        const pass = i < 0 ? '' : decoded.slice(i + 1);
        if (!Object.prototype.hasOwnProperty.call(users, name) || users[name] !== pass) {
          unauthorized(res, rec, 'incorrect username or password');
          return;
        }
        user = name;
      }
      const scopes = u.searchParams.getAll('scope').flatMap((s) => s.split(' ')).filter((s) => s !== '');
      issue(res, rec, user, scopes, u.searchParams.get('offline_token') === 'true');
      return;
    }

    if (req.method === 'POST') {
      if (opts.postNotFound) {
        req.resume();
        send(res, rec, 404, { errors: [{ code: 'NOT_FOUND', message: 'POST not supported' }] });
        return;
      }
      const ct = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
      const raw = await readBody(req);
      if (ct !== 'application/x-www-form-urlencoded') {
        send(res, rec, 400, { error: 'invalid_request', error_description: 'expected application/x-www-form-urlencoded' });
        return;
      }
      const form = new URLSearchParams(raw);
      rec.form = form;
      const svc = form.get('service');
      if (svc !== null && svc !== service) {
        send(res, rec, 400, { error: 'invalid_request', error_description: `unknown service ${svc}` });
        return;
      }
      if (!form.get('client_id')) {
        send(res, rec, 400, { error: 'invalid_request', error_description: 'missing client_id' });
        return;
      }
      const scopeStr = form.get('scope') ?? '';
      const scopes = scopeStr.split(' ').filter((s) => s !== '');
      const grantType = form.get('grant_type');
      if (grantType === 'password') {
        const name = form.get('username') ?? '';
        const pass = form.get('password') ?? '';
        if (!Object.prototype.hasOwnProperty.call(users, name) || users[name] !== pass) {
          unauthorized(res, rec, 'incorrect username or password');
          return;
        }
        issue(res, rec, name, scopes, form.get('access_type') === 'offline', scopeStr);
        return;
      }
      if (grantType === 'refresh_token') {
        const rt = form.get('refresh_token') ?? '';
        const user = refreshTokens.get(rt);
        if (user === undefined) {
          unauthorized(res, rec, 'invalid refresh token');
          return;
        }
        issue(res, rec, user, scopes, false, scopeStr);
        // Keep handing back the same refresh token, as distribution's reference server does.
        return;
      }
      send(res, rec, 400, { error: 'unsupported_grant_type', error_description: `grant_type ${grantType ?? '(missing)'}` });
      return;
    }

    req.resume();
    send(res, rec, 405, { errors: [{ code: 'UNSUPPORTED', message: 'method not allowed' }] }, { allow: 'GET, POST' });
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) {
        res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(String(err));
      } else {
        res.destroy();
      }
    });
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    await signing.cleanup();
    throw err;
  }
  server.unref();
  const port = (server.address() as AddressInfo).port;

  let stopped: Promise<void> | undefined;
  return {
    url: `http://127.0.0.1:${port}/token`,
    service,
    issuer,
    requests,
    certFile: signing.certFile,
    keyFile: signing.keyFile,
    stop() {
      stopped ??= (async () => {
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        });
        await signing.cleanup();
      })();
      return stopped;
    },
  };
}
