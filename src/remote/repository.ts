/**
 * RegistryClient: one registry, one dispatcher, one authenticator with its token cache. Every request goes through
 * `request()`, which layers auth (attach → 401 → challenge → token → replay, at most two rounds) over retry (pure
 * policy from retry.ts; bodies come from factories so a replay reopens the file) over `send()` from http.ts.
 * Registry credentials are attached only to requests for the registry's own origin.
 */
import os from 'node:os';
import { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { AbortedError, AuthError, DigestMismatchError, ModctlError, RegistryError, SizeMismatchError, throwIfAborted } from '../errors.js';
import { digestAlgorithm, digestOf, isDigest } from '../oci/digest.js';
import { MANIFEST_MEDIA_TYPES, MT_OCI_INDEX, MT_OCI_MANIFEST, MT_DOCKER_LIST, MT_DOCKER_MANIFEST } from '../oci/media-types.js';
import { registryHost } from '../oci/reference.js';
import { MAX_MANIFEST_BYTES, type Descriptor } from '../oci/types.js';
import { Authenticator } from './auth/client.js';
import { getCredentials, type Credentials } from './auth/credentials.js';
import { mergeScopes, repositoryScope } from './auth/scope.js';
import { errorFromNetwork, errorFromResponse, shortDigest } from './errors.js';
import { discard, headerValue, headerValues, MAX_REDIRECTS, mediaTypeOf, readCapped, send, TooManyRedirectsError, type HttpResponse } from './http.js';
import { redactText } from './redact.js';
import { retryDecision, retryPolicyFromEnv, sleep, type RetryPolicy } from './retry.js';
import { createDispatcher, defaultUserAgent, proxySettings, readCaFile } from './transport.js';
import type { FetchHeaders, FetchJob } from './fetch-core.js';
import type { SendOutcome } from './send-core.js';
import { FetchPool } from './fetch-pool.js';
import { parseLinkNext, resolveLocation, sameOrigin } from './url.js';
import { uploadBlob, type UploadOptions, type UploadResult } from './upload.js';

export interface RemoteOptions {
  plainHttp?: boolean;
  insecure?: boolean;
  caFile?: string;
  /** DOCKER_CONFIG, HOME, PATH (credential helpers), HTTPS_PROXY/HTTP_PROXY/NO_PROXY, MODCTL_RETRY_BASE_MS. */
  env?: NodeJS.ProcessEnv;
  signal?: AbortSignal;
  /** Registry `Warning` headers (deduplicated) and other non-fatal notices. */
  onWarning?: (msg: string) => void;
  /** Injected transport (tests pass a MockAgent or a short keep-alive Agent); never closed by us. */
  dispatcher?: Dispatcher;
  /** Default `modctl/<version>`. */
  userAgent?: string;
}

export interface ClientOptions extends RemoteOptions {
  /** Use these credentials instead of the Docker config (login checks them before saving). */
  credentials?: Credentials;
  /** Planned parallel transfers (sizes the connection pool). */
  concurrency?: number;
}

/** Every manifest type we parse, explicitly: 2.8 answers 404 without the OCI types, even for `*\/*`. */
export const MANIFEST_ACCEPT = [MT_OCI_MANIFEST, MT_OCI_INDEX, MT_DOCKER_MANIFEST, MT_DOCKER_LIST].join(', ');

export interface RequestSpec {
  method: string;
  url: string;
  /** For messages: "push blob sha256:abcd…". */
  operation: string;
  /** Token scopes this request needs (merged with the client's scope hints). */
  scopes: readonly string[];
  headers?: Record<string, string>;
  /** Called once per attempt so a replay gets a fresh stream. */
  body?: () => Buffer | string | Readable | null;
  /** Retry network errors and 429/502/503/504 (default true). Uploads with partial-progress semantics opt out. */
  retry?: boolean;
  followRedirects?: boolean;
  highWaterMark?: number;
  signal?: AbortSignal;
}

export interface FetchedManifest {
  descriptor: Descriptor;
  bytes: Buffer;
  json: any;
}

/** Generic media types some proxies put on manifests (Artifactory): not a contradiction of the body's mediaType. */
const GENERIC_TYPES = new Set(['application/octet-stream', 'binary/octet-stream', 'application/json', 'text/plain']);

export class RegistryClient {
  readonly registry: string;
  /** `http(s)://host[:port]` of the registry API. */
  readonly baseUrl: string;
  readonly dispatcher: Dispatcher;
  readonly auth: Authenticator;
  readonly policy: RetryPolicy;
  readonly userAgent: string;
  readonly signal?: AbortSignal;
  readonly env: NodeJS.ProcessEnv;
  /** Upload sessions currently open (cancelled on abort). */
  readonly openUploads = new Set<string>();
  private readonly ownsDispatcher: boolean;
  private readonly onWarning?: (msg: string) => void;
  private readonly warned = new Set<string>();
  private scopeHints: string[] = [];
  private pinged?: Promise<void>;
  /** Blob bodies go through fetch worker threads (fetch-core.ts) unless a dispatcher was injected or a proxy is set. */
  readonly fastFetch: boolean;
  /** Smallest blob sent through the fetch workers (MODCTL_FAST_FETCH_MIN, bytes). */
  readonly fastFetchMin: number;
  private readonly directIoMin: number;
  private readonly tlsOptions: FetchJob['tls'];
  private readonly fetchWorkers: number;
  private readonly sendWorkers: number;
  private fetchPool?: FetchPool;
  private sendPool?: FetchPool;

  constructor(registry: string, opts: ClientOptions = {}) {
    this.registry = registry;
    this.env = opts.env ?? process.env;
    this.baseUrl = `${opts.plainHttp ? 'http' : 'https'}://${registryHost(registry)}`;
    this.ownsDispatcher = !opts.dispatcher;
    // read once, for undici and for the fetch workers
    const ca = opts.caFile ? readCaFile(opts.caFile) : undefined;
    this.dispatcher = opts.dispatcher ?? createDispatcher({ insecure: opts.insecure, ca, env: this.env, concurrency: opts.concurrency });
    this.policy = retryPolicyFromEnv(this.env);
    this.userAgent = opts.userAgent ?? defaultUserAgent();
    this.signal = opts.signal;
    this.onWarning = opts.onWarning;
    const proxy = proxySettings(this.env);
    this.fastFetch = !opts.dispatcher && !proxy.httpProxy && !proxy.httpsProxy && this.env.MODCTL_FAST_FETCH !== '0';
    this.tlsOptions = { rejectUnauthorized: !opts.insecure, ...(ca ? { ca } : {}) };
    this.fastFetchMin = byteSetting(this.env.MODCTL_FAST_FETCH_MIN, 8 * 1024 * 1024);
    // O_DIRECT below 64 MiB saves little and costs a probe; MODCTL_DIRECT_IO=0 turns it off.
    this.directIoMin = this.env.MODCTL_DIRECT_IO === '0' ? Infinity : byteSetting(this.env.MODCTL_DIRECT_IO_MIN, 64 * 1024 * 1024);
    this.fetchWorkers = Math.max(1, Math.min(opts.concurrency ?? 5, Number(this.env.MODCTL_FETCH_WORKERS) || 4));
    // Sending hashes on our side while the registry (often on the same machine in CI) hashes on its own: one sending
    // thread per two cores left the registry room and measured fastest (see README, Performance).
    this.sendWorkers = Math.max(1, Math.min(opts.concurrency ?? 5, Number(this.env.MODCTL_SEND_WORKERS) || Math.floor(os.availableParallelism() / 2)));
    const fixed = opts.credentials;
    this.auth = new Authenticator({
      registry,
      dispatcher: this.dispatcher,
      userAgent: this.userAgent,
      credentials: fixed ? async () => fixed : () => getCredentials(registry, this.env),
      policy: this.policy,
      signal: opts.signal,
      registryOrigin: new URL(this.baseUrl).origin,
    });
  }

  /** Ask for these scopes on every token (push asks `pull,push` up front; mount adds `pull` on the source). */
  addScopeHints(...scopes: string[]): void {
    this.scopeHints = mergeScopes(this.scopeHints, scopes);
  }

  pullScope(repo: string): string {
    return repositoryScope(repo, 'pull');
  }
  pushScope(repo: string): string {
    return repositoryScope(repo, 'pull', 'push');
  }

  blobUrl(repo: string, digest: string): string {
    return `${this.baseUrl}/v2/${repo}/blobs/${digest}`;
  }
  manifestUrl(repo: string, reference: string): string {
    return `${this.baseUrl}/v2/${repo}/manifests/${reference}`;
  }
  uploadsUrl(repo: string): string {
    return `${this.baseUrl}/v2/${repo}/blobs/uploads/`;
  }

  /** Close the dispatcher if we created it. Waits at most 2 s for idle sockets, then destroys. */
  async close(): Promise<void> {
    await Promise.all([this.fetchPool?.close(), this.sendPool?.close()]);
    this.fetchPool = undefined;
    if (!this.ownsDispatcher) return;
    let timer: NodeJS.Timeout | undefined;
    const closing = this.dispatcher.close().catch(() => {});
    const timeout = new Promise<'timeout'>((r) => {
      timer = setTimeout(() => r('timeout'), 2000);
      timer.unref?.();
    });
    if ((await Promise.race([closing, timeout])) === 'timeout') await this.dispatcher.destroy().catch(() => {});
    clearTimeout(timer);
  }

  /**
   * `GET /v2/` once per client, unless a body-less request went first (see request()): learns the auth scheme so
   * later requests carry credentials from the first try.
   */
  ping(): Promise<void> {
    this.pinged ??= (async () => {
      try {
        const res = await this.request({ method: 'GET', url: `${this.baseUrl}/v2/`, operation: 'check registry', scopes: [] }, { skipPing: true });
        if (res.status === 200) this.auth.markOpen();
        // 401 (no usable credentials) or 404 (API under another prefix): real requests will say what is wrong.
        await discard(res);
      } catch (e) {
        // Some token services refuse a scope-less token yet grant scoped ones: the scheme is learnt, carry on.
        if (e instanceof AuthError) return;
        this.pinged = undefined;
        throw e;
      }
    })();
    return this.pinged;
  }

  /** GET /v2/ through the full auth flow; throws AuthError unless the registry answers 200. */
  async checkLogin(): Promise<void> {
    const res = await this.request({ method: 'GET', url: `${this.baseUrl}/v2/`, operation: 'log in', scopes: [] }, { skipPing: true });
    if (res.status === 200) {
      await discard(res);
      return;
    }
    const err = await errorFromResponse(this.registry, 'log in', res, this.auth.secrets);
    if (res.status === 401 || res.status === 403) {
      throw new AuthError(this.registry, 'log in', err.message.replace(/^.*?: log in: /, ''), {
        status: res.status,
        ociCodes: err.ociCodes,
        hint: 'check the username and password (or token)',
      });
    }
    throw err;
  }

  /**
   * Send with auth and retries; returns the final response (any status) with its body unconsumed.
   * Network failures that exhaust the policy throw RegistryError; an abort throws AbortedError.
   */
  async request(spec: RequestSpec, internal: { skipPing?: boolean } = {}): Promise<HttpResponse> {
    if (!internal.skipPing) {
      if (this.pinged === undefined && !spec.body && (spec.method === 'GET' || spec.method === 'HEAD')) {
        // The first request without a body stands in for GET /v2/: it meets the same challenge and the auth rounds
        // below learn the scheme from it, one round trip sooner. Requests made meanwhile wait for its answer as they
        // would for the ping. Only a body-less request may go first: a body is never sent before the scheme is known.
        let answered!: () => void;
        const probe = new Promise<void>((resolve) => (answered = resolve));
        this.pinged = probe;
        try {
          const res = await this.exchange(spec);
          // Some registries hide what they will not show anonymously (404 or 403, no challenge). Holding credentials
          // for this one, learn its scheme the classic way and ask once more, with them.
          if ((res.status === 404 || res.status === 403) && !this.auth.known && (await this.auth.credentials())) {
            await discard(res);
            this.pinged = undefined;
            await this.ping();
            return await this.exchange(spec);
          }
          return res;
        } catch (e) {
          if (this.pinged === probe) this.pinged = undefined;
          throw e;
        } finally {
          answered();
        }
      }
      await this.ping();
    }
    return this.exchange(spec);
  }

  /** One request with auth rounds and retries (see request()). */
  private async exchange(spec: RequestSpec): Promise<HttpResponse> {
    const signal = spec.signal ?? this.signal;
    let scopes = mergeScopes(this.scopeHints, spec.scopes);
    let attempt = 0;
    let authRounds = 0;
    const origin = new URL(this.baseUrl).origin;
    for (;;) {
      if (signal?.aborted) throw new AbortedError();
      const toRegistry = sameOrigin(spec.url, origin);
      const authz = toRegistry ? await this.auth.authorization(scopes) : undefined;
      const headers: Record<string, string> = { 'user-agent': this.userAgent, ...(spec.headers ?? {}) };
      if (authz) headers.authorization = authz;
      let res: HttpResponse;
      try {
        res = await send(this.dispatcher, {
          method: spec.method,
          url: spec.url,
          headers,
          body: spec.body ? spec.body() : null,
          signal,
          followRedirects: spec.followRedirects,
          highWaterMark: spec.highWaterMark,
        });
      } catch (e) {
        if (signal?.aborted) throw new AbortedError();
        if (e instanceof TooManyRedirectsError) throw new RegistryError(this.registry, spec.operation, e.message, { cause: e });
        attempt++;
        const d = spec.retry === false ? undefined : retryDecision(this.policy, attempt, { error: e });
        if (!d?.retry) throw errorFromNetwork(this.registry, spec.operation, e, spec.url);
        await sleep(d.delayMs, signal);
        continue;
      }
      this.collectWarnings(res);
      if (res.status === 401 && sameOrigin(res.url, origin) && authRounds < 2) {
        const next = await this.auth.onUnauthorized(headerValues(res.headers, 'www-authenticate'), scopes, authz);
        if (next) {
          await discard(res);
          authRounds++;
          scopes = next;
          continue;
        }
        return res;
      }
      attempt++;
      if (spec.retry !== false) {
        const d = retryDecision(this.policy, attempt, { status: res.status, retryAfter: res.headers['retry-after'] });
        if (d.retry) {
          await discard(res);
          await sleep(d.delayMs, signal);
          continue;
        }
      }
      return res;
    }
  }

  /** Build the error for an unexpected response (consumes up to 8 KiB of the body). */
  fail(res: HttpResponse, operation: string): Promise<RegistryError> {
    return errorFromResponse(this.registry, operation, res, this.auth.secrets);
  }

  private collectWarnings(res: HttpResponse): void {
    if (!this.onWarning) return;
    for (const v of headerValues(res.headers, 'warning')) {
      const re = /(\d{3})\s+\S+\s+"((?:[^"\\]|\\.)*)"/g;
      let m: RegExpExecArray | null;
      while ((m = re.exec(v))) {
        if (m[1] !== '299') continue;
        const text = redactText(m[2].replace(/\\(.)/g, '$1'), this.auth.secrets).slice(0, 4096);
        if (this.warned.has(text)) continue;
        this.warned.add(text);
        this.onWarning(`${this.registry}: ${text}`);
      }
    }
  }

  // ---- blobs ----

  /** HEAD a blob: its size when present, undefined on 404. */
  async headBlob(repo: string, digest: string): Promise<{ size: number; digest?: string } | undefined> {
    const headers = await this.head(this.blobUrl(repo, digest), `check blob ${shortDigest(digest)}`, [this.pullScope(repo)]);
    if (!headers) return undefined;
    const len = Number(headerValue(headers, 'content-length'));
    return { size: Number.isFinite(len) ? len : -1, digest: headerValue(headers, 'docker-content-digest') };
  }

  /** HEAD: the response headers on 200, undefined on 404, a RegistryError otherwise. */
  private async head(url: string, operation: string, scopes: string[], headers?: Record<string, string>): Promise<HttpResponse['headers'] | undefined> {
    const res = await this.request({ method: 'HEAD', url, operation, scopes, headers });
    if (res.status === 404) {
      await discard(res);
      return undefined;
    }
    if (res.status !== 200) throw await this.fail(res, operation);
    await discard(res);
    return res.headers;
  }

  /**
   * GET a blob, following redirects (Authorization dropped off-origin, Range kept). With `offset > 0` a `Range`
   * is sent; the caller checks 200 vs 206. Returns the raw response (2xx only; errors are thrown).
   */
  async getBlob(repo: string, digest: string, opts: { offset?: number; highWaterMark?: number; signal?: AbortSignal } = {}): Promise<HttpResponse> {
    const operation = `pull blob ${shortDigest(digest)}`;
    const headers: Record<string, string> = { accept: '*/*' };
    if (opts.offset && opts.offset > 0) headers.range = `bytes=${opts.offset}-`;
    const res = await this.request({
      method: 'GET',
      url: this.blobUrl(repo, digest),
      operation,
      scopes: [this.pullScope(repo)],
      headers,
      highWaterMark: opts.highWaterMark ?? 1 << 20,
      signal: opts.signal,
    });
    if (res.status !== 200 && res.status !== 206) throw await this.fail(res, operation);
    return res;
  }

  /** Start the fetch workers before the first big blob is asked for (see FetchPool.warm); no-op without them. */
  warmFetchWorkers(): void {
    if (this.fastFetch) this.workers().warm();
  }

  /** The same for the sending workers, when a file of `size` bytes or more is to be sent (sendFileBody). */
  warmSendWorkers(largest: number): void {
    if (this.fastFetch && largest >= this.fastFetchMin) this.senders().warm();
  }

  private workers(): FetchPool {
    this.fetchPool ??= new FetchPool(this.fetchWorkers);
    return this.fetchPool;
  }

  private senders(): FetchPool {
    this.sendPool ??= new FetchPool(this.sendWorkers);
    return this.sendPool;
  }

  /**
   * One request made by a fetch worker (`start(headers)` posts it), with this client's credentials when it goes to
   * the registry's origin: while the registry answers 401 with a challenge we can meet (at most two rounds), the
   * request is made again. A worker's failure becomes the error `request()` would throw for the network, or
   * `local(...)` for our side (disk, file). An answer (`kind: 'response'`) comes back as an HttpResponse too.
   */
  private async workerRequest<T extends { kind: string }>(
    req: { url: string; method: string; operation: string; credentials: boolean; headers: Record<string, string>; scopes: readonly string[]; signal?: AbortSignal },
    start: (headers: Record<string, string>) => Promise<T | WorkerFailure>,
    local: (out: WorkerFailure, cause: Error) => Error,
  ): Promise<{ out: T; res?: HttpResponse }> {
    let scopes = mergeScopes(this.scopeHints, req.scopes);
    for (let authRounds = 0; ; ) {
      throwIfAborted(req.signal);
      const authz = req.credentials ? await this.auth.authorization(scopes) : undefined;
      const headers: Record<string, string> = { 'user-agent': this.userAgent, ...req.headers };
      if (authz) headers.authorization = authz;
      const out = await start(headers);
      if (isWorkerFailure(out)) {
        if (out.name === 'AbortError' || req.signal?.aborted) throw new AbortedError();
        const e = Object.assign(new Error(out.message), { code: out.code });
        throw out.local ? local(out, e) : errorFromNetwork(this.registry, req.operation, e, req.url);
      }
      if (out.kind !== 'response') return { out };
      const answer = out as unknown as { status: number; headers: FetchHeaders; body: Uint8Array };
      const res: HttpResponse = {
        status: answer.status,
        headers: answer.headers as HttpResponse['headers'],
        body: Readable.from([Buffer.from(answer.body)]) as unknown as HttpResponse['body'],
        url: req.url,
        method: req.method,
        sentHeaders: headers,
      };
      this.collectWarnings(res);
      if (answer.status === 401 && req.credentials && authRounds < 2) {
        const next = await this.auth.onUnauthorized(headerValues(res.headers, 'www-authenticate'), scopes, authz);
        if (next) {
          authRounds++;
          scopes = next;
          continue;
        }
      }
      return { out, res };
    }
  }

  /**
   * Receive a blob into `file` on a fetch worker thread (fetch-core.ts), with this client's auth and redirect rules:
   * a 401 from the registry is answered with credentials (at most two rounds), redirects are followed (at most 10,
   * Range kept, Authorization never sent off the registry's origin). With `offset > 0` the bytes of `file` up to
   * `offset` are kept and the rest asked for with Range. Returns:
   * - done: the digest of the whole file and its length (a 200 to a ranged request restarted it at 0);
   * - range-mismatch: a 206 for another range than asked (nothing written; start over from 0);
   * - unsupported: a body framing the worker does not read (nothing written; use getBlob).
   * Throws the typed registry error for any other status, and an Error with the socket's code for transport
   * failures (bytes received before them stay in `file`).
   */
  async fetchBlobToFile(
    repo: string,
    digest: string,
    o: { file: string; offset: number; size: number; mode?: number; signal?: AbortSignal; onProgress?: (pos: number) => void },
  ): Promise<{ kind: 'done'; digest: string; length: number } | { kind: 'range-mismatch' } | { kind: 'unsupported'; reason: string }> {
    const operation = `pull blob ${shortDigest(digest)}`;
    const signal = o.signal ?? this.signal;
    await this.ping();
    const origin = new URL(this.baseUrl).origin;
    let url = this.blobUrl(repo, digest);
    let offRegistry = false;
    for (let hop = 0; ; ) {
      const headers: Record<string, string> = { accept: '*/*' };
      if (o.offset > 0) headers.range = `bytes=${o.offset}-`;
      const target = url;
      const { out, res } = await this.workerRequest(
        { url, method: 'GET', operation, credentials: !offRegistry && sameOrigin(url, origin), headers, scopes: [this.pullScope(repo)], signal },
        (h) =>
          this.workers().run(
            { url: target, headers: h, tls: this.tlsOptions, file: o.file, offset: o.offset, size: o.size, alg: digestAlgorithm(digest), mode: o.mode, preallocate: true, directIoMin: this.directIoMin },
            { signal, onProgress: o.onProgress },
          ),
        (f, cause) => {
          if (f.code === 'E_SIZE_MISMATCH') return new SizeMismatchError(o.size, f.actual ?? -1, `blob ${digest}`);
          // our side: the disk, the partial file, a header we refused to send
          return new ModctlError('E_IO', `${operation}: ${f.message}`, {
            cause,
            hint: f.code === 'ENOSPC' || f.code === 'EDQUOT' ? 'free some disk space and run again: the bytes received so far are kept' : undefined,
          });
        },
      );
      if (out.kind === 'done') return { kind: 'done', digest: out.digest, length: out.length };
      if (out.kind === 'unsupported') return out;
      if (res!.status === 206) return { kind: 'range-mismatch' };
      const location = headerValue(res!.headers, 'location');
      if ([301, 302, 303, 307, 308].includes(res!.status) && location) {
        if (++hop > MAX_REDIRECTS) throw new RegistryError(this.registry, operation, `more than ${MAX_REDIRECTS} redirects`);
        const next = resolveLocation(location, url);
        // Credentials are bound to the registry's origin; once off it they are not sent again on this transfer.
        if (!sameOrigin(next, origin)) offRegistry = true;
        url = next;
        continue;
      }
      throw await this.fail(res!, operation);
    }
  }

  /**
   * Send `length` bytes of `file` from `start` as the body of one request on a worker thread (send-core.ts),
   * hashing them on the way unless `hash: false`, with this client's credentials (a 401 from the registry is answered, at most two rounds,
   * by sending the body again). Returns the response (any status; body capped at 8 KiB), the bytes sent, and the
   * digest of the range when all of it went out. Transport failures throw like `request()` does; a failure to read
   * the file is an E_READ (or E_FILE_CHANGED) error.
   */
  async sendFileBody(
    method: 'PATCH',
    url: string,
    o: {
      file: string;
      start: number;
      length: number;
      headers: Record<string, string>;
      operation: string;
      scopes: readonly string[];
      signal?: AbortSignal;
      onProgress?: (sent: number) => void;
      /** Hash the range on the way (default true); false when the digest is already known. */
      hash?: boolean;
    },
  ): Promise<{ res: HttpResponse; sent: number; digest?: string }> {
    const signal = o.signal ?? this.signal;
    await this.ping();
    const { out, res } = await this.workerRequest(
      { url, method, operation: o.operation, credentials: sameOrigin(url, new URL(this.baseUrl).origin), headers: o.headers, scopes: o.scopes, signal },
      (h) => this.senders().send({ method, url, headers: h, tls: this.tlsOptions, file: o.file, start: o.start, length: o.length, alg: o.hash === false ? undefined : 'sha256', directIoMin: this.directIoMin }, { signal, onProgress: o.onProgress }),
      (f, cause) => new ModctlError(f.code === 'E_FILE_CHANGED' ? 'E_FILE_CHANGED' : 'E_READ', f.message, { cause }),
    );
    const answer = out as Extract<SendOutcome, { kind: 'response' }>;
    return { res: res!, sent: answer.sent, digest: answer.digest };
  }

  /**
   * Cross-repository mount (end-11). 201 → mounted. 202 → not mounted, but an upload session was opened: its
   * Location is returned so the caller continues with it instead of POSTing again.
   */
  async mountBlob(repo: string, digest: string, from: string): Promise<{ mounted: true } | { mounted: false; location: string; minChunk?: number }> {
    const operation = `mount blob ${shortDigest(digest)} from ${from}`;
    const url = `${this.uploadsUrl(repo)}?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(from)}`;
    const res = await this.request({
      method: 'POST',
      url,
      operation,
      scopes: [this.pushScope(repo), this.pullScope(from)],
      headers: { 'content-length': '0' },
    });
    if (res.status === 201) {
      await discard(res);
      return { mounted: true };
    }
    if (res.status === 202) {
      await discard(res);
      const loc = headerValue(res.headers, 'location');
      if (!loc) throw new RegistryError(this.registry, operation, 'the registry opened an upload without a Location header');
      const location = resolveLocation(loc, res.url);
      this.openUploads.add(location);
      return { mounted: false, location, minChunk: chunkMin(res) };
    }
    throw await this.fail(res, operation);
  }

  /** POST …/blobs/uploads/ (end-4a): the session Location (resolved) and OCI-Chunk-Min-Length if any. */
  async startUpload(repo: string, digest: string): Promise<{ location: string; minChunk?: number }> {
    const operation = `push blob ${shortDigest(digest)}`;
    const res = await this.request({
      method: 'POST',
      url: this.uploadsUrl(repo),
      operation,
      scopes: [this.pushScope(repo)],
      headers: { 'content-length': '0' },
    });
    if (res.status !== 202 && res.status !== 201) throw await this.fail(res, operation);
    await discard(res);
    const loc = headerValue(res.headers, 'location');
    if (!loc) throw new RegistryError(this.registry, operation, 'the registry opened an upload without a Location header');
    const location = resolveLocation(loc, res.url);
    this.openUploads.add(location);
    return { location, minChunk: chunkMin(res) };
  }

  /** DELETE an upload session (end-14); failures are ignored. Uses its own short deadline: it runs after an abort. */
  async cancelUpload(location: string): Promise<void> {
    this.openUploads.delete(location);
    const signal = AbortSignal.timeout(5000);
    try {
      const res = await this.request({ method: 'DELETE', url: location, operation: 'cancel upload', scopes: [], retry: false, signal }, { skipPing: true });
      await discard(res);
    } catch {
      /* best effort */
    }
  }

  /** Cancel every open upload session (after an abort). */
  async cancelOpenUploads(): Promise<void> {
    await Promise.all([...this.openUploads].map((l) => this.cancelUpload(l)));
  }

  /**
   * Upload a blob unless the caller already knows it is absent (push does the HEAD). See upload.ts for the styles.
   * `openStream(offset)` must return the blob's bytes from `offset` (a fresh stream per call).
   */
  uploadBlob(repo: string, desc: Descriptor, openStream: (offset: number) => Readable, opts: UploadOptions = {}): Promise<UploadResult> {
    return uploadBlob(this, repo, desc, openStream, opts);
  }

  // ---- manifests ----

  /** GET a manifest by tag or digest, verified (digest when asked by digest, DCD when present, media type). */
  async getManifest(repo: string, reference: string): Promise<FetchedManifest> {
    const sep = isDigestLike(reference) ? '@' : ':';
    const operation = `fetch manifest ${repo}${sep}${reference}`;
    if (sep === '@' && !isDigest(reference)) {
      throw new RegistryError(this.registry, operation, `unsupported digest algorithm in ${reference}`, { hint: 'only sha256 and sha512 digests can be verified' });
    }
    const res = await this.request({
      method: 'GET',
      url: this.manifestUrl(repo, reference),
      operation,
      scopes: [this.pullScope(repo)],
      headers: { accept: MANIFEST_ACCEPT },
    });
    if (res.status !== 200) throw await this.fail(res, operation);
    const declared = Number(headerValue(res.headers, 'content-length'));
    if (Number.isFinite(declared) && declared > MAX_MANIFEST_BYTES) {
      res.body.destroy();
      throw new RegistryError(this.registry, operation, `manifest is ${declared} bytes, over the ${MAX_MANIFEST_BYTES}-byte limit`);
    }
    const { bytes, truncated } = await readCapped(res.body, MAX_MANIFEST_BYTES);
    if (truncated) throw new RegistryError(this.registry, operation, `manifest is over the ${MAX_MANIFEST_BYTES}-byte limit`);
    const alg = isDigest(reference) ? digestAlgorithm(reference) : 'sha256';
    const digest = digestOf(bytes, alg);
    if (isDigestLike(reference) && digest !== reference) throw new DigestMismatchError(reference, digest, 'manifest');
    const dcd = headerValue(res.headers, 'docker-content-digest')?.trim();
    if (dcd && dcd.split(':')[0] === alg && dcd !== digest) throw new DigestMismatchError(dcd, digest, 'manifest (Docker-Content-Digest)');
    let json: any;
    try {
      json = JSON.parse(bytes.toString('utf8'));
    } catch {
      throw new RegistryError(this.registry, operation, 'the manifest is not valid JSON');
    }
    if (!json || typeof json !== 'object' || json.schemaVersion !== 2) {
      throw new RegistryError(this.registry, operation, `unsupported manifest (schemaVersion ${JSON.stringify(json?.schemaVersion)})`, {
        hint: 'only OCI and Docker schema 2 manifests are supported',
      });
    }
    const ct = mediaTypeOf(headerValue(res.headers, 'content-type'));
    const bodyType = typeof json.mediaType === 'string' ? json.mediaType : undefined;
    if (bodyType && ct && !GENERIC_TYPES.has(ct) && ct !== bodyType.toLowerCase()) {
      throw new RegistryError(this.registry, operation, `Content-Type ${ct} contradicts the manifest's mediaType ${bodyType}`);
    }
    let mediaType = bodyType ?? (ct && MANIFEST_MEDIA_TYPES.includes(ct) ? ct : undefined);
    mediaType ??= Array.isArray(json.manifests) ? MT_OCI_INDEX : json.config ? MT_OCI_MANIFEST : undefined;
    if (!mediaType || !MANIFEST_MEDIA_TYPES.includes(mediaType)) {
      throw new RegistryError(this.registry, operation, `unsupported manifest media type ${JSON.stringify(mediaType ?? ct)}`);
    }
    const descriptor: Descriptor = { mediaType, digest, size: bytes.length };
    if (typeof json.artifactType === 'string') descriptor.artifactType = json.artifactType;
    return { descriptor, bytes, json };
  }

  /** PUT a manifest (by digest or tag); checks Docker-Content-Digest when present. Returns the digest. */
  async putManifest(repo: string, reference: string, bytes: Buffer, mediaType: string): Promise<{ digest: string }> {
    const sep = isDigestLike(reference) ? '@' : ':';
    const operation = `push manifest ${repo}${sep}${reference}`;
    const res = await this.request({
      method: 'PUT',
      url: this.manifestUrl(repo, reference),
      operation,
      scopes: [this.pushScope(repo)],
      headers: { 'content-type': mediaType, 'content-length': String(bytes.length) },
      body: () => bytes,
    });
    if (res.status < 200 || res.status > 299) throw await this.fail(res, operation);
    await discard(res);
    const alg = isDigest(reference) ? digestAlgorithm(reference) : 'sha256';
    const digest = digestOf(bytes, alg);
    const dcd = headerValue(res.headers, 'docker-content-digest')?.trim();
    if (dcd && dcd.split(':')[0] === alg && dcd !== digest) throw new DigestMismatchError(digest, dcd, 'pushed manifest (Docker-Content-Digest)');
    return { digest };
  }

  /** HEAD a manifest: its digest (from DCD) when present, undefined on 404. */
  async headManifest(repo: string, reference: string): Promise<{ digest?: string; size?: number; mediaType?: string } | undefined> {
    const headers = await this.head(this.manifestUrl(repo, reference), `check manifest ${repo}:${reference}`, [this.pullScope(repo)], {
      accept: MANIFEST_ACCEPT,
    });
    if (!headers) return undefined;
    const len = Number(headerValue(headers, 'content-length'));
    return {
      digest: headerValue(headers, 'docker-content-digest'),
      size: Number.isFinite(len) ? len : undefined,
      mediaType: mediaTypeOf(headerValue(headers, 'content-type')),
    };
  }

  // ---- tags ----

  /**
   * All tags, sorted (ASCII). Follows `Link: <…>; rel="next"` relative to the request URL; stops when there is no
   * Link or a page adds nothing new (2.8 ignores n/last and would loop forever otherwise).
   */
  async listTags(repo: string): Promise<string[]> {
    const operation = `list tags of ${repo}`;
    const tags = new Set<string>();
    let url = `${this.baseUrl}/v2/${repo}/tags/list`;
    const seenUrls = new Set<string>();
    for (let page = 0; page < 10_000; page++) {
      throwIfAborted(this.signal);
      seenUrls.add(url);
      const res = await this.request({ method: 'GET', url, operation, scopes: [this.pullScope(repo)], headers: { accept: 'application/json' } });
      if (res.status !== 200) throw await this.fail(res, operation);
      // Tag lists can be long; 16 MiB is ~400k tags and still bounded.
      const { bytes, truncated } = await readCapped(res.body, 16 * 1024 * 1024);
      if (truncated) throw new RegistryError(this.registry, operation, 'tag list page larger than 16 MiB');
      let json: any;
      try {
        json = JSON.parse(bytes.toString('utf8'));
      } catch {
        throw new RegistryError(this.registry, operation, 'the tag list is not valid JSON');
      }
      let added = 0;
      for (const t of Array.isArray(json?.tags) ? json.tags : []) {
        if (typeof t === 'string' && !tags.has(t)) {
          tags.add(t);
          added++;
        }
      }
      const next = parseLinkNext(headerValues(res.headers, 'link'));
      if (!next || added === 0) break;
      const nextUrl = resolveLocation(next, res.url);
      if (seenUrls.has(nextUrl)) break;
      url = nextUrl;
    }
    return [...tags].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  }
}

function isDigestLike(reference: string): boolean {
  return /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/.test(reference);
}

function chunkMin(res: HttpResponse): number | undefined {
  const v = Number(headerValue(res.headers, 'oci-chunk-min-length'));
  return Number.isSafeInteger(v) && v > 0 ? v : undefined;
}

/** A fetch worker's failed outcome (fetch-core.ts and send-core.ts share its shape). */
type WorkerFailure = { kind: 'failed'; message: string; code?: string; name?: string; local?: boolean; actual?: number };

function isWorkerFailure(o: { kind: string }): o is WorkerFailure {
  return o.kind === 'failed';
}

/** A non-negative integer byte count from the environment, else the default. */
function byteSetting(v: string | undefined, dflt: number): number {
  return v !== undefined && /^\d+$/.test(v.trim()) ? Number(v.trim()) : dflt;
}
