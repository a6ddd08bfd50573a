/**
 * A strict, in-process OCI registry for the remote client's unit tests (node:http, port 0, loopback). It implements
 * the distribution endpoints we use (blobs, uploads with monolithic/streamed/chunked styles, mount, manifests, tags),
 * optional Basic or Bearer auth with a built-in token endpoint, and a `hook` that lets a test take over any request
 * to produce the protocol corners distribution 2.8 cannot show. Every request is logged. Not a test file itself.
 */
import http from 'node:http';
import { createHash, randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';

export interface LoggedRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  bodyLength: number;
}

export interface HookContext {
  req: http.IncomingMessage;
  res: http.ServerResponse;
  body: Buffer;
  url: URL;
  reg: FakeRegistry;
}

export type Hook = (ctx: HookContext) => boolean | Promise<boolean>;

export interface FakeRegistryOptions {
  /** Basic auth: user → password. */
  basic?: Record<string, string>;
  /** Bearer auth through `<url>/token`; `users` for Basic at the token endpoint; `anonymous` allows no creds. */
  bearer?: { users?: Record<string, string>; anonymous?: boolean; refreshTokens?: Record<string, string>; postSupported?: boolean; service?: string; expiresIn?: number };
  /** Answer upload Locations relative (`/v2/...`) instead of absolute. */
  relativeLocations?: boolean;
  /** Enforce Content-Range on PATCH (416 when the start is not the current size). */
  strictChunks?: boolean;
  /** Omit Docker-Content-Digest on manifest GET/PUT responses. */
  noManifestDigest?: boolean;
}

interface Upload {
  repo: string;
  data: Buffer[];
  size: number;
  state: number;
}

export const sha256 = (b: Buffer | string) => 'sha256:' + createHash('sha256').update(b).digest('hex');

export class FakeRegistry {
  readonly log: LoggedRequest[] = [];
  /** Content by digest. */
  readonly blobs = new Map<string, Buffer>();
  /** repo → digests linked there. */
  readonly repoBlobs = new Map<string, Set<string>>();
  /** repo → reference (tag or digest) → manifest. */
  readonly manifests = new Map<string, Map<string, { bytes: Buffer; mediaType: string }>>();
  readonly uploads = new Map<string, Upload>();
  /** Issued bearer tokens → scopes. */
  readonly tokens = new Map<string, string[]>();
  hook?: Hook;
  url = '';
  host = '';
  private server!: http.Server;

  constructor(readonly opts: FakeRegistryOptions = {}) {}

  static async start(opts: FakeRegistryOptions = {}): Promise<FakeRegistry> {
    const r = new FakeRegistry(opts);
    r.server = http.createServer((req, res) => {
      r.handle(req, res).catch((e) => {
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(String(e?.stack ?? e));
      });
    });
    r.server.keepAliveTimeout = 50;
    await new Promise<void>((resolve) => r.server.listen(0, '127.0.0.1', resolve));
    const port = (r.server.address() as AddressInfo).port;
    r.host = `127.0.0.1:${port}`;
    r.url = `http://${r.host}`;
    return r;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** Requests matching method and a path substring. */
  requests(method: string, pathPart = ''): LoggedRequest[] {
    return this.log.filter((l) => l.method === method && l.url.includes(pathPart));
  }

  putBlob(repo: string, data: Buffer): string {
    const d = sha256(data);
    this.blobs.set(d, data);
    this.link(repo, d);
    return d;
  }

  putManifest(repo: string, ref: string, bytes: Buffer, mediaType: string): string {
    const d = sha256(bytes);
    const m = this.manifests.get(repo) ?? new Map();
    m.set(d, { bytes, mediaType });
    if (ref !== d) m.set(ref, { bytes, mediaType });
    this.manifests.set(repo, m);
    return d;
  }

  private link(repo: string, d: string): void {
    const s = this.repoBlobs.get(repo) ?? new Set<string>();
    s.add(d);
    this.repoBlobs.set(repo, s);
  }

  private uploadLocation(repo: string, id: string, state: number): string {
    const p = `/v2/${repo}/blobs/uploads/${id}?_state=${encodeURIComponent(`st+${state}/x=`)}`;
    return this.opts.relativeLocations ? p : `${this.url}${p}`;
  }

  json(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
    const b = Buffer.from(JSON.stringify(body));
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(b.length), ...headers });
    res.end(b);
  }

  error(res: http.ServerResponse, status: number, code: string, message = code.toLowerCase(), headers: Record<string, string> = {}): void {
    this.json(res, status, { errors: [{ code, message, detail: null }] }, headers);
  }

  private authorized(req: http.IncomingMessage, res: http.ServerResponse, url: URL, scope: string | undefined): boolean {
    const a = req.headers.authorization;
    if (this.opts.basic) {
      if (a?.startsWith('Basic ')) {
        const [u, ...p] = Buffer.from(a.slice(6), 'base64').toString().split(':');
        if (this.opts.basic[u] === p.join(':')) return true;
      }
      this.error(res, 401, 'UNAUTHORIZED', 'authentication required', { 'www-authenticate': 'Basic realm="fake"' });
      return false;
    }
    if (this.opts.bearer) {
      const service = this.opts.bearer.service ?? 'fake-registry';
      const challenge = `Bearer realm="${this.url}/token",service="${service}"${scope ? `,scope="${scope}"` : ''}`;
      if (a?.startsWith('Bearer ')) {
        const granted = this.tokens.get(a.slice(7));
        if (!granted) {
          this.error(res, 401, 'UNAUTHORIZED', 'bad token', { 'www-authenticate': `${challenge},error="invalid_token"` });
          return false;
        }
        if (!scope || covers(granted, scope)) return true;
        this.error(res, 401, 'UNAUTHORIZED', 'insufficient scope', { 'www-authenticate': `${challenge},error="insufficient_scope"` });
        return false;
      }
      this.error(res, 401, 'UNAUTHORIZED', 'authentication required', { 'www-authenticate': challenge });
      return false;
    }
    void url;
    return true;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    const url = new URL(req.url ?? '/', this.url);
    this.log.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, bodyLength: body.length });
    if (this.hook && (await this.hook({ req, res, body, url, reg: this }))) return;
    const method = req.method ?? 'GET';
    const p = url.pathname;

    if (p === '/token' && this.opts.bearer) return this.token(req, res, url, body);
    if (p === '/v2/' || p === '/v2') {
      if (!this.authorized(req, res, url, undefined)) return;
      return this.json(res, 200, {});
    }
    let m = /^\/v2\/(.+)\/blobs\/uploads\/([^/]*)$/.exec(p);
    if (m) return this.uploadRoute(req, res, url, body, m[1], m[2]);
    m = /^\/v2\/(.+)\/blobs\/([^/]+)$/.exec(p);
    if (m) {
      const [, repo, digest] = m;
      if (!this.authorized(req, res, url, `repository:${repo}:pull`)) return;
      const data = this.repoBlobs.get(repo)?.has(digest) ? this.blobs.get(digest) : undefined;
      if (!data) return method === 'HEAD' ? void res.writeHead(404).end() : this.error(res, 404, 'BLOB_UNKNOWN');
      return serveBytes(req, res, data, { 'docker-content-digest': digest, 'content-type': 'application/octet-stream' });
    }
    m = /^\/v2\/(.+)\/manifests\/([^/]+)$/.exec(p);
    if (m) {
      const [, repo, ref] = m;
      if (method === 'PUT') {
        if (!this.authorized(req, res, url, `repository:${repo}:pull,push`)) return;
        const mt = (req.headers['content-type'] ?? '').split(';')[0];
        const d = this.putManifest(repo, ref, body, mt);
        if (ref.includes(':') && ref !== d) return this.error(res, 400, 'DIGEST_INVALID');
        const h: Record<string, string> = { location: `/v2/${repo}/manifests/${d}` };
        if (!this.opts.noManifestDigest) h['docker-content-digest'] = d;
        res.writeHead(201, h);
        return void res.end();
      }
      if (!this.authorized(req, res, url, `repository:${repo}:pull`)) return;
      const e = this.manifests.get(repo)?.get(ref);
      if (!e) return method === 'HEAD' ? void res.writeHead(404).end() : this.error(res, 404, 'MANIFEST_UNKNOWN');
      const h: Record<string, string> = { 'content-type': e.mediaType, 'content-length': String(e.bytes.length) };
      if (!this.opts.noManifestDigest) h['docker-content-digest'] = sha256(e.bytes);
      res.writeHead(200, h);
      return void res.end(method === 'HEAD' ? undefined : e.bytes);
    }
    m = /^\/v2\/(.+)\/tags\/list$/.exec(p);
    if (m) {
      if (!this.authorized(req, res, url, `repository:${m[1]}:pull`)) return;
      const tags = [...(this.manifests.get(m[1])?.keys() ?? [])].filter((t) => !t.includes(':'));
      return this.json(res, 200, { name: m[1], tags });
    }
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('404 page not found\n');
  }

  private uploadRoute(req: http.IncomingMessage, res: http.ServerResponse, url: URL, body: Buffer, repo: string, id: string): void {
    const method = req.method;
    if (!this.authorized(req, res, url, `repository:${repo}:pull,push`)) return;
    if (method === 'POST' && !id) {
      const mount = url.searchParams.get('mount');
      const from = url.searchParams.get('from');
      if (mount && from && this.repoBlobs.get(from)?.has(mount)) {
        this.link(repo, mount);
        res.writeHead(201, { location: `/v2/${repo}/blobs/${mount}`, 'docker-content-digest': mount });
        return void res.end();
      }
      const uid = randomBytes(8).toString('hex');
      this.uploads.set(uid, { repo, data: [], size: 0, state: 0 });
      res.writeHead(202, { location: this.uploadLocation(repo, uid, 0), range: '0-0', 'docker-upload-uuid': uid, 'content-length': '0' });
      return void res.end();
    }
    const up = this.uploads.get(id);
    if (!up || up.repo !== repo) return this.error(res, 404, 'BLOB_UPLOAD_UNKNOWN');
    // 2.8 semantics: the newest Location carries a state that must be replayed exactly.
    const st = url.searchParams.get('_state');
    if (st !== `st+${up.state}/x=`) return this.error(res, 404, 'BLOB_UPLOAD_INVALID', `stale or mangled _state ${st}`);
    if (method === 'GET') {
      res.writeHead(204, { location: this.uploadLocation(repo, id, up.state), range: `0-${Math.max(0, up.size - 1)}`, 'docker-upload-uuid': id });
      return void res.end();
    }
    if (method === 'DELETE') {
      this.uploads.delete(id);
      res.writeHead(204);
      return void res.end();
    }
    if (method === 'PATCH') {
      const cr = req.headers['content-range'];
      if (this.opts.strictChunks && cr) {
        const mm = /^(\d+)-(\d+)$/.exec(String(cr));
        if (!mm || Number(mm[1]) !== up.size || Number(mm[2]) - Number(mm[1]) + 1 !== body.length) {
          res.writeHead(416, { location: this.uploadLocation(repo, id, up.state), range: `0-${Math.max(0, up.size - 1)}` });
          return void res.end();
        }
      }
      up.data.push(body);
      up.size += body.length;
      up.state++;
      res.writeHead(202, { location: this.uploadLocation(repo, id, up.state), range: `0-${Math.max(0, up.size - 1)}`, 'docker-upload-uuid': id });
      return void res.end();
    }
    if (method === 'PUT') {
      const digest = url.searchParams.get('digest');
      if (body.length) {
        up.data.push(body);
        up.size += body.length;
      }
      const data = Buffer.concat(up.data);
      if (!digest || sha256(data) !== digest) return this.error(res, 400, 'DIGEST_INVALID', `got ${sha256(data)}`);
      this.uploads.delete(id);
      this.blobs.set(digest, data);
      this.link(repo, digest);
      res.writeHead(201, { location: `/v2/${repo}/blobs/${digest}`, 'docker-content-digest': digest });
      return void res.end();
    }
    this.error(res, 405, 'UNSUPPORTED');
  }

  private token(req: http.IncomingMessage, res: http.ServerResponse, url: URL, body: Buffer): void {
    const b = this.opts.bearer!;
    let scopes: string[] = [];
    if (req.method === 'POST') {
      if (!b.postSupported) return void res.writeHead(404).end();
      const form = new URLSearchParams(body.toString());
      if (form.get('client_id') !== 'modctl') return this.json(res, 400, { error: 'invalid_request' });
      if (form.get('grant_type') !== 'refresh_token' || !b.refreshTokens?.[form.get('refresh_token') ?? '']) return this.json(res, 401, { error: 'invalid_grant' });
      scopes = (form.get('scope') ?? '').split(' ').filter(Boolean);
    } else {
      scopes = url.searchParams.getAll('scope');
      const a = req.headers.authorization;
      if (a?.startsWith('Basic ')) {
        const [u, ...p] = Buffer.from(a.slice(6), 'base64').toString().split(':');
        if (b.users?.[u] !== p.join(':')) return this.json(res, 401, { errors: [{ code: 'UNAUTHORIZED', message: 'bad credentials' }] });
      } else if (!b.anonymous) {
        return this.json(res, 401, { errors: [{ code: 'UNAUTHORIZED', message: 'anonymous access denied' }] });
      }
    }
    const t = 'tok-' + randomBytes(12).toString('hex');
    this.tokens.set(t, scopes);
    this.json(res, 200, { access_token: t, expires_in: b.expiresIn ?? 300, issued_at: new Date().toISOString() });
  }
}

function covers(granted: string[], scope: string): boolean {
  const want = scope.split(' ');
  return want.every((w) => {
    const i = w.lastIndexOf(':');
    const [name, actions] = [w.slice(0, i), w.slice(i + 1).split(',')];
    return actions.every((a) => granted.some((g) => g.slice(0, g.lastIndexOf(':')) === name && g.slice(g.lastIndexOf(':') + 1).split(',').includes(a)));
  });
}

/** Serve bytes with Range support (206 + Content-Range) like 2.8. */
export function serveBytes(req: http.IncomingMessage, res: http.ServerResponse, data: Buffer, headers: Record<string, string> = {}): void {
  const range = req.headers.range;
  const m = range ? /^bytes=(\d+)-(\d*)$/.exec(range) : null;
  if (m) {
    const start = Number(m[1]);
    const end = m[2] ? Math.min(Number(m[2]), data.length - 1) : data.length - 1;
    if (start >= data.length) {
      res.writeHead(416, { 'content-range': `bytes */${data.length}` });
      return void res.end();
    }
    res.writeHead(206, { ...headers, 'content-length': String(end - start + 1), 'content-range': `bytes ${start}-${end}/${data.length}`, 'accept-ranges': 'bytes' });
    return void res.end(req.method === 'HEAD' ? undefined : data.subarray(start, end + 1));
  }
  res.writeHead(200, { ...headers, 'content-length': String(data.length), 'accept-ranges': 'bytes' });
  res.end(req.method === 'HEAD' ? undefined : data);
}
