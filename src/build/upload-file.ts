/**
 * Pushing layer blobs straight from the working tree to a registry, reading each file once: the digest is computed
 * while the bytes flow to the registry (one streamed PATCH, then `PUT ?digest=<computed>`, which the registry
 * verifies), so nothing is staged in the local store. Small blobs (≤ 4 MiB) are read into memory, hashed, HEADed and
 * sent in one monolithic PUT. A digest-cache hit whose blob the registry already holds (HEAD) skips the file without
 * reading it. Used by `build --output-remote`, `upload` and `attach --output-remote`.
 */
import { createReadStream, promises as fsp, type Stats } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { AbortedError, DigestMismatchError, ModctlError, RegistryError, UsageError, isAbortError, throwIfAborted } from '../errors.js';
import { HashingStream, digestOf } from '../oci/digest.js';
import { parseReference, repoName } from '../oci/reference.js';
import type { Descriptor } from '../oci/types.js';
import type { IdFamily } from '../oci/media-types.js';
import { RegistryClient, SMALL_BLOB_BYTES, type RemoteOptions } from '../remote/index.js';
import { RegistryStatusError } from '../remote/errors.js';
import { discard, headerValue } from '../remote/http.js';
import { retryDecision, sleep, type RetryDecision } from '../remote/retry.js';
import { appendDigestQuery, resolveLocation } from '../remote/url.js';
import { classifyFile } from '../modelfile/classify.js';
import type { FileKind } from '../modelfile/index.js';
import type { ProgressFn } from '../util/progress.js';
import { DigestCache, type CachedDigest } from './digest-cache.js';
import { layerDescriptor, collectTarItems, packTar, type TarItem, type LayerOptions } from './layer.js';
import { entrySize, type SourceEntry } from './sources.js';

const HWM = 1 << 20;
const OCTET = 'application/octet-stream';

/** Upper bound of the tar size of `items` when it is small enough to hold in memory, else undefined. */
function smallTarBound(items: readonly TarItem[]): number | undefined {
  let n = 1024;
  for (const it of items) {
    n += 512 + 1536; // header plus a possible PAX header, and padding
    if (!it.isDir) n += it.stat.size;
  }
  return n <= SMALL_BLOB_BYTES ? n : undefined;
}

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

// ---------------------------------------------------------------------------------------------------------------
// uploads

export interface BlobPush {
  digest: string;
  size: number;
  /** false: the registry already held it (HEAD), nothing was sent. */
  uploaded: boolean;
  mounted?: boolean;
  bytesUploaded: number;
}

function decide(client: RegistryClient, attempt: number, e: unknown): RetryDecision {
  if (e instanceof RegistryStatusError && e.status !== undefined) {
    const ra = e.retryAfterMs !== undefined ? String(Math.ceil(e.retryAfterMs / 1000)) : undefined;
    return retryDecision(client.policy, attempt, { status: e.status, retryAfter: ra });
  }
  if (e instanceof ModctlError && !(e instanceof RegistryError)) return { retry: false, reason: 'local failure' };
  if (e instanceof RegistryError && e.status !== undefined) return { retry: false, reason: 'final status' };
  return retryDecision(client.policy, attempt, { error: e });
}

/** HEAD, then (when absent) one monolithic upload of bytes held in memory. */
export async function pushBytes(client: RegistryClient, repo: string, bytes: Buffer, signal?: AbortSignal): Promise<BlobPush> {
  const digest = digestOf(bytes);
  const size = bytes.length;
  const present = await client.headBlob(repo, digest);
  if (present && (present.size === size || present.size < 0)) return { digest, size, uploaded: false, bytesUploaded: 0 };
  const r = await client.uploadBlob(repo, { mediaType: OCTET, digest, size }, (offset) => Readable.from([bytes.subarray(offset)]), { signal });
  return { digest, size, uploaded: true, bytesUploaded: r.bytesUploaded };
}

export interface StreamHashingOptions {
  /** For messages ("push blob <label>"). */
  label: string;
  /** Content-Length when known (raw files); chunked transfer encoding otherwise. */
  size?: number;
  signal?: AbortSignal;
  /**
   * The source is this file (all `size` bytes of it): big ones are then sent and hashed on a fetch worker thread
   * (RegistryClient.sendFileBody) instead of through `open()`.
   */
  file?: string;
  /** With `file`: bytes sent, as they go (progress for the fast path; `open()` reports its own reads). */
  onSent?: (bytes: number) => void;
  /** Throws when the source changed during the upload (checked after a failure and before committing). */
  checkUnchanged?: () => Promise<void>;
}

/**
 * Upload content whose digest is not known yet: POST, one PATCH whose body is `open()` piped through a hasher (no
 * copies: the file's 1 MiB buffers go to the socket as they are hashed), then `PUT <location>?digest=<computed>`.
 * A failed attempt cancels the session and, when the failure is transient, starts over with a fresh stream.
 */
export async function pushStreamHashing(client: RegistryClient, repo: string, open: () => Readable, opts: StreamHashingOptions): Promise<BlobPush> {
  const signal = opts.signal ?? client.signal;
  const operation = `push blob ${opts.label}`;
  const scopes = [client.pushScope(repo)];
  for (let attempt = 1; ; attempt++) {
    let location: string | undefined;
    let hasher: HashingStream | undefined;
    let producerError: unknown;
    let sent = 0;
    const setLocation = (res: { headers: any; url: string }) => {
      const loc = headerValue(res.headers, 'location');
      if (!loc) return;
      const next = resolveLocation(loc, res.url);
      if (location && location !== next) client.openUploads.delete(location);
      location = next;
      client.openUploads.add(next);
    };
    try {
      location = (await client.startUpload(repo, opts.label)).location;
      const body = (): Readable => {
        // A replay (auth round) gets a fresh source and a fresh hash.
        const h = new HashingStream();
        hasher = h;
        const src = open();
        src.on('data', (c: Buffer) => {
          if (h === hasher) sent += c.length;
        });
        // Errors of the source (read failures) are ours to report; the request only sees a destroyed body.
        src.on('error', (err) => {
          if (!isAbortError(err)) producerError ??= err;
          h.destroy(err);
        });
        h.on('error', () => {});
        h.on('close', () => {
          if (!src.destroyed) src.destroy();
        });
        src.pipe(h);
        return h;
      };
      const headers: Record<string, string> = { 'content-type': OCTET };
      if (opts.size !== undefined) headers['content-length'] = String(opts.size);
      let digest: string | undefined;
      let size: number;
      if (opts.file !== undefined && opts.size !== undefined && client.fastFetch && opts.size >= client.fastFetchMin) {
        const r = await client.sendFileBody('PATCH', location, {
          file: opts.file,
          start: 0,
          length: opts.size,
          headers: { 'content-type': OCTET },
          operation,
          scopes,
          signal,
          onProgress: (n) => {
            opts.onSent?.(n - sent);
            sent = n;
          },
        });
        if (r.res.status < 200 || r.res.status > 299) throw await client.fail(r.res, operation);
        setLocation(r.res);
        digest = r.digest;
        size = r.sent;
      } else {
        const res = await client.request({ method: 'PATCH', url: location, operation, scopes, headers, body, retry: false, signal, highWaterMark: HWM });
        if (res.status < 200 || res.status > 299) throw await client.fail(res, operation);
        await discard(res);
        setLocation(res);
        if (producerError) throw producerError;
        try {
          digest = hasher!.digest;
        } catch {
          digest = undefined;
        }
        size = hasher!.size;
      }
      if (digest === undefined) throw new RegistryError(client.registry, operation, 'the registry answered before receiving the whole blob');
      if (opts.size !== undefined && size !== opts.size) {
        throw new ModctlError('E_FILE_CHANGED', `${opts.label} changed size while it was being read (${opts.size} → ${size} bytes)`, {
          hint: 'do not modify the model files during a build',
        });
      }
      await opts.checkUnchanged?.();
      const put = await client.request({
        method: 'PUT',
        url: appendDigestQuery(location, digest),
        operation,
        scopes,
        headers: { 'content-type': OCTET, 'content-length': '0' },
        retry: false,
        signal,
      });
      if (put.status < 200 || put.status > 299) throw await client.fail(put, operation);
      await discard(put);
      client.openUploads.delete(location);
      location = undefined;
      const dcd = headerValue(put.headers, 'docker-content-digest')?.trim();
      if (dcd && dcd.startsWith('sha256:') && dcd !== digest) throw new DigestMismatchError(digest, dcd, 'uploaded blob (Docker-Content-Digest)');
      return { digest, size, uploaded: true, bytesUploaded: sent };
    } catch (e) {
      if (location) await client.cancelUpload(location);
      if (signal?.aborted || isAbortError(e)) throw new AbortedError();
      await opts.checkUnchanged?.();
      if (producerError) throw producerError instanceof ModctlError ? producerError : localReadError(opts.label, producerError);
      const d = decide(client, attempt, e);
      if (!d.retry) throw e;
      await sleep(d.delayMs, signal);
    }
  }
}

function localReadError(label: string, e: unknown): ModctlError {
  return new ModctlError('E_READ', `cannot read ${label}: ${(e as Error)?.message ?? String(e)}`, { cause: e });
}

// ---------------------------------------------------------------------------------------------------------------
// one layer

export interface LayerPushContext {
  client: RegistryClient;
  repo: string;
  cache: DigestCache;
  layerOpts: LayerOptions;
  /** Real path that symlinks inside directory layers must stay within. */
  contextReal: string;
  signal?: AbortSignal;
  onProgress?: ProgressFn;
}

export interface PushedLayer {
  desc: Descriptor;
  /** The registry already held the blob: nothing was sent. */
  reused: boolean;
  /** The content was read and hashed (false on a digest-cache hit). */
  hashed: boolean;
  cacheHit: boolean;
  uploaded: boolean;
  bytesUploaded: number;
}

function fileChangedCheck(e: SourceEntry): () => Promise<void> {
  return async () => {
    const st = await fsp.stat(e.absPath).catch(() => undefined);
    if (!st || st.size !== e.stat.size || st.mtimeMs !== e.stat.mtimeMs || st.ino !== e.stat.ino) {
      throw new ModctlError('E_FILE_CHANGED', `${e.relPath} changed while it was being read`, { hint: 'do not modify the model files during a build' });
    }
  };
}

/** Push one layer (raw file or tar of a file/directory) unless the digest cache and a HEAD say it is there. */
export async function pushLayer(ctx: LayerPushContext, e: SourceEntry): Promise<PushedLayer> {
  const { client, repo, cache, layerOpts, signal } = ctx;
  const progress = ctx.onProgress ?? (() => {});
  throwIfAborted(signal);
  const id = `layer:${e.relPath}`;
  progress({ type: 'start', id, label: e.relPath, total: e.isDir ? undefined : e.stat.size });
  const onBytes = (n: number) => progress({ type: 'advance', id, bytes: n });
  const raw = layerOpts.raw && !e.isDir;
  const items = raw ? undefined : await collectTarItems(e, ctx.contextReal);
  const key = DigestCache.layerKey(e, raw, layerOpts.sourceDateEpoch, e.isDir ? DigestCache.treeFingerprint(items!) : undefined);
  const hit = cache.get(key);
  if (hit) {
    const present = await client.headBlob(repo, hit.digest);
    if (present && (present.size === hit.size || present.size < 0)) {
      progress({ type: 'done', id, skipped: true });
      return { desc: layerDescriptor(e, hit, layerOpts), reused: true, hashed: false, cacheHit: true, uploaded: false, bytesUploaded: 0 };
    }
  }
  let r: BlobPush;
  if (raw) {
    if (e.stat.size <= SMALL_BLOB_BYTES) {
      let bytes: Buffer;
      try {
        bytes = await fsp.readFile(e.absPath);
      } catch (err) {
        throw localReadError(e.relPath, err);
      }
      if (bytes.length !== e.stat.size) {
        throw new ModctlError('E_FILE_CHANGED', `${e.relPath} changed size while it was being read (${e.stat.size} → ${bytes.length} bytes)`, {
          hint: 'do not modify the model files during a build',
        });
      }
      onBytes(bytes.length);
      r = await pushBytes(client, repo, bytes, signal);
    } else {
      const open = () => {
        const s = createReadStream(e.absPath, { highWaterMark: HWM, start: 0, end: e.stat.size - 1 });
        s.on('data', (c: string | Buffer) => onBytes(c.length));
        return s;
      };
      r = await pushStreamHashing(client, repo, open, {
        label: e.relPath,
        size: e.stat.size,
        file: e.absPath,
        onSent: onBytes,
        signal,
        checkUnchanged: fileChangedCheck(e),
      });
    }
  } else if (smallTarBound(items!) !== undefined) {
    const bytes = await collect(packTar(items!, layerOpts, onBytes, signal));
    r = await pushBytes(client, repo, bytes, signal);
  } else {
    r = await pushStreamHashing(client, repo, () => packTar(items!, layerOpts, onBytes, signal), { label: e.relPath, signal });
  }
  const blob: CachedDigest = { digest: r.digest, size: r.size };
  cache.set(key, blob);
  progress({ type: 'done', id, skipped: !r.uploaded });
  return { desc: layerDescriptor(e, blob, layerOpts), reused: !r.uploaded, hashed: true, cacheHit: false, uploaded: r.uploaded, bytesUploaded: r.bytesUploaded };
}

// ---------------------------------------------------------------------------------------------------------------
// single files (upload, attach)

/**
 * The layer path of a file given on the command line: `<destinationDir>/<basename>`, or the path as typed relative
 * to the current directory (which must not lead outside it).
 */
export function layerPathFor(file: string, cwd: string, destinationDir?: string): string {
  const base = path.basename(file);
  if (destinationDir !== undefined && destinationDir !== '') {
    const d = destinationDir.split(path.sep).join('/');
    const norm = path.posix.normalize(d).replace(/\/+$/, '');
    if (path.posix.isAbsolute(norm) || norm === '..' || norm.startsWith('../')) {
      throw new UsageError(`--destination-dir ${JSON.stringify(destinationDir)} must be a relative path inside the artifact`);
    }
    return norm === '.' || norm === '' ? base : `${norm}/${base}`;
  }
  const rel = path.relative(cwd, path.resolve(cwd, file));
  if (rel === '' || rel === '..' || rel.startsWith('..' + path.sep) || path.isAbsolute(rel)) {
    throw new UsageError(`${file} is outside the current directory, so it has no path inside the artifact`, {
      hint: 'pass --destination-dir <dir> to place it at <dir>/' + base,
    });
  }
  return rel.split(path.sep).join('/');
}

/** A single regular file as a layer source, classified like `modelfile generate` does. */
export async function fileEntry(file: string, cwd: string, destinationDir?: string): Promise<SourceEntry> {
  const abs = path.resolve(cwd, file);
  let real: string;
  let stat: Stats;
  try {
    real = await fsp.realpath(abs);
    stat = await fsp.stat(real);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ModctlError('E_FILE', code === 'ENOENT' ? `file ${file} does not exist` : `cannot read ${file}: ${(e as Error).message}`, { exitCode: 2 });
  }
  if (stat.isDirectory()) throw new UsageError(`${file} is a directory; give a single file`);
  if (!stat.isFile()) throw new UsageError(`${file} is not a regular file`);
  const relPath = layerPathFor(file, cwd, destinationDir);
  const kind: FileKind = classifyFile(relPath, stat.size);
  return { kind, relPath, absPath: real, isDir: false, stat };
}

export interface UploadFileOptions {
  file: string;
  cwd: string;
  /** `registry/repository` (no tag). */
  repo: string;
  raw?: boolean;
  destinationDir?: string;
  /** Store directory holding the digest cache. */
  cacheDir: string;
  remote: RemoteOptions;
  family?: IdFamily;
  sourceDateEpoch?: number;
  onProgress?: ProgressFn;
  onWarning?: (msg: string) => void;
}

export interface UploadFileResult {
  repository: string;
  path: string;
  kind: FileKind;
  digest: string;
  size: number;
  mediaType: string;
  /** The blob was sent (false: the registry already held it). */
  uploaded: boolean;
  /** The file was read and hashed (false: digest-cache hit confirmed by HEAD). */
  hashed: boolean;
  bytesUploaded: number;
  descriptor: Descriptor;
}

/** `modctl upload`: push one file's layer blob so a later `build --output-remote` skips it. */
export async function uploadFile(opts: UploadFileOptions): Promise<UploadFileResult> {
  const ref = parseReference(opts.repo, { defaultTag: false });
  if (ref.tag || ref.digest) {
    throw new UsageError(`--repo ${opts.repo} must name a repository without a tag or digest`, { hint: 'e.g. --repo registry.example.com/models/llama3' });
  }
  const entry = await fileEntry(opts.file, opts.cwd, opts.destinationDir);
  const layerOpts: LayerOptions = { family: opts.family ?? 'cncf', raw: opts.raw ?? true, sourceDateEpoch: opts.sourceDateEpoch };
  const cache = await DigestCache.load(opts.cacheDir);
  const client = new RegistryClient(ref.registry, opts.remote);
  client.addScopeHints(client.pushScope(ref.repository));
  client.warmSendWorkers(entrySize(entry));
  try {
    const r = await pushLayer(
      { client, repo: ref.repository, cache, layerOpts, contextReal: path.dirname(entry.absPath), signal: opts.remote.signal, onProgress: opts.onProgress },
      entry,
    );
    return {
      repository: repoName(ref),
      path: entry.relPath,
      kind: entry.kind,
      digest: r.desc.digest,
      size: r.desc.size,
      mediaType: r.desc.mediaType,
      uploaded: r.uploaded,
      hashed: r.hashed,
      bytesUploaded: r.bytesUploaded,
      descriptor: r.desc,
    };
  } catch (e) {
    if (opts.remote.signal?.aborted) {
      await client.cancelOpenUploads();
      throw new AbortedError();
    }
    throw e;
  } finally {
    await cache.save().catch((e) => opts.onWarning?.(`could not save the digest cache: ${(e as Error).message}`));
    await client.close();
  }
}

