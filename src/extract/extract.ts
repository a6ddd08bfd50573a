/**
 * Layers → directory tree (modelpack.md §8.2 "Extract", §9 #7, #10, #16, #19).
 *
 * Guarantees:
 * - every path comes through safe-path.ts; nothing is written outside `outputDir`, and never through a symlink
 *   (pre-existing ones inside the output, or ones the same tar created);
 * - nothing lands under a final name before the bytes behind it are verified: raw layers stream through a
 *   VerifyingStream into a temp file that is renamed only after the digest matched; tar layers verify the whole
 *   (compressed) blob while reading and rename all their temp files only after the blob digest matched at the end;
 * - on any error or abort the temp files (and directories this layer created, when still empty) are removed;
 * - pure streaming: memory does not grow with blob or file size.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, lstatSync, promises as fsp, type Stats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { pipeline, Transform, type Readable, type TransformCallback } from 'node:stream';
import tarStream, { type Extract as TarExtract, type Header as TarHeader } from 'tar-stream';
import { AbortedError, ModctlError, UnsafePathError, throwIfAborted } from '../errors.js';
import { digestAlgorithm, digestOfFile, isDigest, VerifyingStream } from '../oci/digest.js';
import {
  ANN_ORAS_UNPACK,
  ANN_TITLE,
  layerFileMetadata,
  layerFilepath,
  parseLayerMediaType,
  type LayerEncoding,
} from '../oci/media-types.js';
import type { Descriptor, FileMetadata } from '../oci/types.js';
import { decodeLayer } from './codecs.js';
import { checkLinkTarget, isRootEntryPath, normalizeEntryPath, resolveEntryPath } from './safe-path.js';
import { mapUntilFailure } from '../util/limit.js';

export interface ExtractOptions {
  outputDir: string; // created if missing
  force?: boolean; // overwrite existing differing files
  concurrency?: number; // layers in parallel, default 5
  signal?: AbortSignal;
  onWarning?: (msg: string) => void;
  onProgress?: (ev: { layer: Descriptor; bytes: number }) => void; // bytes = delta just processed
  /** Return the layer blob as a stream. For resume-capable callers this may be called again. */
  openBlob: (layer: Descriptor, offset?: number) => Promise<Readable>;
  /**
   * Raw files are downloaded under a stable partial name (`.<name>.modctl-partial-<digest>`) that is kept when the
   * transfer fails or is interrupted; the next run re-hashes it and asks openBlob for the rest (offset > 0).
   */
  resumable?: boolean;
  /**
   * Optional fast path when `resumable`: receive the layer into `file` (keeping the bytes already there and fetching
   * the rest), reporting the file position written so far; resolves once the file is complete and its size and
   * digest verified (throwing otherwise, the file removed), or with undefined when it does not apply (openBlob is used
   * instead).
   */
  fetchToFile?: (layer: Descriptor, file: string, onProgress: (pos: number) => void) => Promise<object | undefined>;
  /**
   * Optional: only layers for which this returns true are extracted. `path` is the layer's target path when `target`
   * gives one, else its file path annotation.
   */
  filter?: (layer: Descriptor, path: string | undefined) => boolean;
  /**
   * Optional per-layer instructions (how to decode, where to write) that replace what the descriptor's media type and
   * annotations say; undefined for a layer = the descriptor decides. src/formats/normalize.ts maps every artifact
   * dialect onto this, so the extractor itself needs no dialect knowledge.
   */
  target?: (layer: Descriptor) => LayerTarget | undefined;
}

/**
 * Where one layer goes. Every path here is as untrusted as an annotation: it goes through the same safe-path checks
 * (and is checked before anything is written).
 */
export interface LayerTarget {
  encoding: LayerEncoding;
  /** raw: the file's path. tar*: the directory the entries are unpacked under (default: the output root). */
  path?: string;
  /**
   * tar*: every entry must be named `<stripPrefix>` or `<stripPrefix>/…` (anything else is refused); the prefix is
   * removed before the name is joined with `path` (ORAS directories, oras-go `ensureBasePath`).
   */
  stripPrefix?: string;
  /** tar*: digest of the decoded (uncompressed) tar stream, verified before anything is committed. */
  contentDigest?: string;
}

/**
 * One file-system object an extraction produced or considered. `path` is relative to the output directory,
 * `/`-separated. `digest` is the layer digest for raw layers and the sha256 of the content for tar entries (absent for
 * symlinks and skipped entries). Directories are not listed.
 */
export interface ExtractedFile {
  path: string;
  size: number;
  digest?: string;
  action: 'written' | 'kept' | 'skipped';
}

/** `layers` = layers extracted (after `filter`); `bytes` = sum of their blob sizes. */
export interface ExtractResult {
  files: ExtractedFile[];
  layers: number;
  bytes: number;
}

const DEFAULT_CONCURRENCY = 5;
const DEFAULT_FILE_MODE = 0o644;
const DEFAULT_DIR_MODE = 0o755;
/** Only permission bits are restored: setuid/setgid/sticky from an untrusted artifact are dropped. */
const PERM_MASK = 0o777;
/** Leave room in NAME_MAX (255 bytes) for the `.` prefix and the `.modctl-tmp-<12 hex>` suffix. */
const MAX_TEMP_BASE_BYTES = 200;

const OCI_TAR_LAYER = /^application\/vnd\.oci\.image\.layer\.v1\.tar(\+gzip|\+zstd)?$/;

/**
 * How a layer's blob is encoded. ModelPack media types are parsed (both id families); otherwise OCI image tar layers
 * are tar*, ORAS directory layers (`io.deis.oras.content.unpack: "true"` on a `+gzip` type) are tar+gzip, and any
 * other layer carrying `org.opencontainers.image.title` is a raw file. Anything else: ModctlError E_UNSUPPORTED_LAYER.
 */
export function layerEncoding(layer: Descriptor): LayerEncoding {
  const parsed = parseLayerMediaType(layer.mediaType);
  if (parsed) return parsed.encoding;
  const oci = OCI_TAR_LAYER.exec(layer.mediaType);
  if (oci) return oci[1] === '+gzip' ? 'tar+gzip' : oci[1] === '+zstd' ? 'tar+zstd' : 'tar';
  if (layer.annotations?.[ANN_ORAS_UNPACK] === 'true' && /\+gzip$/.test(layer.mediaType)) return 'tar+gzip';
  if (layer.annotations?.[ANN_TITLE]) return 'raw';
  throw new ModctlError(
    'E_UNSUPPORTED_LAYER',
    `cannot extract layer ${layer.digest}: unsupported media type ${JSON.stringify(layer.mediaType)}`,
    { hint: 'only ModelPack layers, OCI tar layers and layers with an org.opencontainers.image.title can be extracted' },
  );
}

interface Ctx {
  root: string;
  opts: ExtractOptions;
  signal?: AbortSignal;
  locks: KeyedLock;
}

/** Extract one layer (exported for extract-from-remote callers). */
export async function extractLayer(layer: Descriptor, opts: ExtractOptions): Promise<ExtractedFile[]> {
  throwIfAborted(opts.signal);
  if (opts.filter && !opts.filter(layer, filterPath(layer, opts))) return [];
  checkTarget(layer, opts);
  const root = path.resolve(opts.outputDir);
  await fsp.mkdir(root, { recursive: true });
  return extractOne(layer, { root, opts, signal: opts.signal, locks: new KeyedLock() });
}

export async function extractLayers(layers: Descriptor[], opts: ExtractOptions): Promise<ExtractResult> {
  throwIfAborted(opts.signal);
  const selected = opts.filter ? layers.filter((l) => opts.filter!(l, filterPath(l, opts))) : [...layers];
  // Refuse unsupported layers, and unsafe target paths, before writing anything.
  for (const l of selected) checkTarget(l, opts);
  const root = path.resolve(opts.outputDir);
  await fsp.mkdir(root, { recursive: true });

  // One failure (or the caller's abort) stops the other layers, which clean up after themselves. Largest first:
  // a model's config and docs, usually listed first, do not hold back its weights.
  const locks = new KeyedLock();
  const results = await mapUntilFailure(
    selected,
    Math.floor(opts.concurrency ?? DEFAULT_CONCURRENCY) || 1,
    (layer, signal) => extractOne(layer, { root, opts, signal, locks }),
    { size: (l) => l.size, signal: opts.signal },
  );
  throwIfAborted(opts.signal);
  return {
    files: results.flat(),
    layers: selected.length,
    bytes: selected.reduce((s, l) => s + l.size, 0),
  };
}

function filterPath(layer: Descriptor, opts: ExtractOptions): string | undefined {
  const t = opts.target?.(layer);
  return t ? t.path : layerFilepath(layer.annotations);
}

/** The layer's encoding; for caller-given targets also the safety of their paths (throws before any IO). */
function checkTarget(layer: Descriptor, opts: ExtractOptions): LayerEncoding {
  const t = opts.target?.(layer);
  if (!t) return layerEncoding(layer);
  if (t.path !== undefined) normalizeEntryPath(t.path);
  if (t.stripPrefix !== undefined) normalizeEntryPath(t.stripPrefix);
  return t.encoding;
}

async function extractOne(layer: Descriptor, ctx: Ctx): Promise<ExtractedFile[]> {
  throwIfAborted(ctx.signal);
  const t = ctx.opts.target?.(layer);
  const enc = t ? t.encoding : layerEncoding(layer);
  return enc === 'raw' ? extractRaw(layer, ctx, t) : extractTar(layer, enc, ctx, t);
}

// ---------------------------------------------------------------------------------------------------------------
// Raw layers: one file named by the filepath annotation.

async function extractRaw(layer: Descriptor, ctx: Ctx, target?: LayerTarget): Promise<ExtractedFile[]> {
  const fp = target ? target.path : layerFilepath(layer.annotations);
  if (fp === undefined) {
    throw new ModctlError('E_NO_FILEPATH', `raw layer ${layer.digest} has no file path annotation`, {
      hint: 'expected org.cncf.model.filepath, org.cnai.model.filepath or org.opencontainers.image.title',
    });
  }
  const rel = normalizeEntryPath(fp);
  const abs = resolveEntryPath(ctx.root, fp);
  const meta = rawFileMeta(layer, ctx);
  return ctx.locks.run(abs, async () => {
    const createdDirs: string[] = [];
    try {
      await ensureParentDirs(ctx.root, rel, createdDirs);
      const st = await lstatOrUndefined(abs);
      if (st) {
        if (st.isFile() && st.size === layer.size) {
          const have = await digestOfFile(abs, digestAlgorithm(layer.digest), ctx.signal);
          if (have === layer.digest) {
            await applyModeTime(abs, meta.mode, meta.mtime);
            ctx.opts.onProgress?.({ layer, bytes: layer.size });
            return [{ path: rel, size: layer.size, digest: layer.digest, action: 'kept' as const }];
          }
        }
        if (!ctx.opts.force || st.isDirectory()) throw existsError(rel, ctx.root, st);
      }
      await checkSpace(ctx.root, layer.size, layer);
      await writeRawFile(layer, abs, meta, ctx);
      return [{ path: rel, size: layer.size, digest: layer.digest, action: 'written' as const }];
    } catch (e) {
      await removeEmptyDirs(createdDirs);
      throw e;
    }
  });
}

async function writeRawFile(layer: Descriptor, abs: string, meta: { mode: number; mtime?: Date }, ctx: Ctx): Promise<void> {
  throwIfAborted(ctx.signal);
  const resumable = !!ctx.opts.resumable;
  const tmp = resumable ? partialPath(abs, layer.digest) : tempPath(abs);
  if (resumable && ctx.opts.fetchToFile && (await fetchRawFile(layer, abs, tmp, meta, ctx))) return;
  // Resume: seed the hash with the bytes already on disk (a partial longer than the blob is stale: start over).
  let have = 0;
  let hash = createHash(digestAlgorithm(layer.digest));
  if (resumable) {
    const st = await lstatOrUndefined(tmp);
    if (st?.isFile() && st.size <= layer.size) {
      have = st.size;
      for await (const c of createReadStream(tmp, { highWaterMark: 1 << 20 })) hash.update(c as Buffer);
    } else if (st) {
      await fsp.rm(tmp, { force: true });
    }
    if (have > 0) ctx.opts.onProgress?.({ layer, bytes: have });
  }
  if (have === 0) hash = createHash(digestAlgorithm(layer.digest));
  const src = await ctx.opts.openBlob(layer, have);
  const verified = pipeline(src, new VerifyingStream(layer.digest, layer.size, { what: `layer ${layer.digest}`, initialHash: hash, initialSize: have }), noop);
  const offAbort = onAbort(ctx.signal, () => verified.destroy(new AbortedError()));
  let fh: FileHandle | undefined;
  let done = false;
  let keepPartial = resumable;
  try {
    throwIfAborted(ctx.signal);
    fh = await fsp.open(tmp, have > 0 ? 'a' : resumable ? 'w' : 'wx', 0o600);
    try {
      for await (const chunk of verified as AsyncIterable<Buffer>) {
        await writeAll(fh, chunk);
        ctx.opts.onProgress?.({ layer, bytes: chunk.length });
      }
    } catch (e) {
      // bytes that fail verification are worthless: do not resume from them
      if ((e as { code?: string }).code === 'E_DIGEST_MISMATCH' || (e as { code?: string }).code === 'E_SIZE_MISMATCH') keepPartial = false;
      throw e;
    }
    throwIfAborted(ctx.signal);
    await fh.chmod(meta.mode);
    if (meta.mtime) await fh.utimes(meta.mtime, meta.mtime);
    await fh.sync();
    await fh.close();
    fh = undefined;
    await fsp.rename(tmp, abs);
    done = true;
  } finally {
    offAbort();
    if (!done) {
      verified.destroy();
      src.destroy();
      if (fh) {
        if (keepPartial) await fh.sync().catch(noop);
        await fh.close().catch(noop);
      }
      if (!keepPartial) await fsp.rm(tmp, { force: true }).catch(noop);
    }
  }
}

/** writeRawFile through `fetchToFile`: false when that path does not apply (nothing was written). */
async function fetchRawFile(layer: Descriptor, abs: string, tmp: string, meta: { mode: number; mtime?: Date }, ctx: Ctx): Promise<boolean> {
  if (!(await fetchVerified(layer, tmp, ctx))) return false;
  throwIfAborted(ctx.signal);
  await fsp.chmod(tmp, meta.mode);
  if (meta.mtime) await fsp.utimes(tmp, meta.mtime, meta.mtime);
  await fsp.rename(tmp, abs);
  return true;
}

/**
 * Receive `layer` into `file` through `fetchToFile` (resuming what `file` holds; it verifies); false when that path
 * does not apply (nothing was written). Download progress is reported as it goes.
 */
async function fetchVerified(layer: Descriptor, file: string, ctx: Ctx): Promise<boolean> {
  // Only a regular file (or nothing) may sit under the partial name: the fetcher opens it without following links.
  const st = await lstatOrUndefined(file);
  if (st && !st.isFile()) await fsp.rm(file, { recursive: true, force: true });
  let reported = 0;
  const report = (pos: number) => {
    if (pos > reported) {
      ctx.opts.onProgress?.({ layer, bytes: pos - reported });
      reported = pos;
    }
  };
  if ((await ctx.opts.fetchToFile!(layer, file, report)) === undefined) return false;
  report(layer.size);
  return true;
}

/** Stable name of a resumable partial download next to its final path. */
function partialPath(abs: string, digest: string): string {
  let base = path.basename(abs);
  while (Buffer.byteLength(base) > MAX_TEMP_BASE_BYTES) base = Array.from(base).slice(0, -1).join('');
  return path.join(path.dirname(abs), `.${base}.modctl-partial-${digest.slice(digest.indexOf(':') + 1, digest.indexOf(':') + 17)}`);
}

function rawFileMeta(layer: Descriptor, ctx: Ctx): { mode: number; mtime?: Date } {
  const out: { mode: number; mtime?: Date } = { mode: DEFAULT_FILE_MODE };
  const json = layerFileMetadata(layer.annotations);
  if (json === undefined) return out;
  let m: Partial<FileMetadata>;
  try {
    m = JSON.parse(json) as Partial<FileMetadata>;
  } catch {
    ctx.opts.onWarning?.(`layer ${layer.digest}: ignoring unparsable file metadata annotation`);
    return out;
  }
  if (typeof m.mode === 'number' && Number.isInteger(m.mode) && m.mode >= 0) out.mode = m.mode & PERM_MASK;
  if (typeof m.mtime === 'string') {
    const d = new Date(m.mtime);
    if (Number.isNaN(d.getTime())) ctx.opts.onWarning?.(`layer ${layer.digest}: ignoring invalid mtime ${JSON.stringify(m.mtime)}`);
    else out.mtime = d;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Tar layers (tar, tar+gzip, tar+zstd).

type TarOp =
  | { kind: 'file'; rel: string; abs: string; tmp?: string; size: number; digest: string; mode: number; mtime?: Date; action: 'written' | 'kept'; dead?: boolean }
  | { kind: 'hardlink'; rel: string; abs: string; target: string; size: number; digest: string; action: 'written' | 'kept'; dead?: boolean }
  | { kind: 'symlink'; rel: string; abs: string; target: string; mtime?: Date; action: 'written' | 'kept'; dead?: boolean }
  | { kind: 'dir'; rel: string; abs: string; mode: number; mtime?: Date; dead?: boolean }
  | { kind: 'skipped'; rel: string; dead?: boolean };

async function extractTar(layer: Descriptor, enc: Exclude<LayerEncoding, 'raw'>, ctx: Ctx, target?: LayerTarget): Promise<ExtractedFile[]> {
  // Validated before the download starts: a hostile target directory or prefix is refused up front.
  const names = new EntryNames(target?.path, target?.stripPrefix);
  // Resumable callers with a fetcher stage a big layer as a verified file first (it then survives a kill like a raw
  // file does), which needs room for the layer and its contents side by side.
  const staging = !!ctx.opts.resumable && !!ctx.opts.fetchToFile;
  await checkSpace(ctx.root, staging ? 2 * layer.size : layer.size, layer);
  throwIfAborted(ctx.signal);
  const stagedPath = path.join(ctx.root, `.modctl-partial-layer-${layer.digest.slice(layer.digest.indexOf(':') + 1, layer.digest.indexOf(':') + 17)}`);
  const staged = staging && (await fetchVerified(layer, stagedPath, ctx)) ? stagedPath : undefined;
  try {
    return await extractTarFrom(layer, enc, ctx, names, target, staged);
  } finally {
    // a verified layer is worth keeping only for a run that was interrupted: the next one extracts it without a download
    if (staged && !ctx.signal?.aborted) await fsp.rm(staged, { force: true });
  }
}

async function extractTarFrom(layer: Descriptor, enc: Exclude<LayerEncoding, 'raw'>, ctx: Ctx, names: EntryNames, target: LayerTarget | undefined, staged: string | undefined): Promise<ExtractedFile[]> {
  // A staged copy was verified as it arrived; a streamed blob is verified here, as stored (compressed) bytes, before
  // decoding.
  const verified = staged
    ? createReadStream(staged, { highWaterMark: 256 * 1024 })
    : pipeline(
        await ctx.opts.openBlob(layer),
        new VerifyingStream(layer.digest, layer.size, { what: `layer ${layer.digest}` }),
        new CountingStream((n) => ctx.opts.onProgress?.({ layer, bytes: n })),
        noop,
      );
  let decoded: Readable;
  try {
    decoded = decodeLayer(enc, verified);
  } catch (e) {
    verified.destroy();
    throw e;
  }
  if (target?.contentDigest !== undefined) {
    if (isDigest(target.contentDigest)) {
      // The decoded stream is read to its end below, so the check runs in the verifier's flush before any commit.
      decoded = pipeline(decoded, new VerifyingStream(target.contentDigest, undefined, { what: `uncompressed content of layer ${layer.digest}` }), noop);
    } else {
      ctx.opts.onWarning?.(`layer ${layer.digest}: ignoring invalid content digest ${JSON.stringify(target.contentDigest)}`);
    }
  }

  const tar = new TarLayer(layer, ctx, names);
  let failed = false;
  let firstError: unknown;
  const fail = (e: unknown) => {
    if (!failed) {
      failed = true;
      firstError = e;
    }
  };

  const extract = tarStream.extract();
  let inflight: Promise<void> = Promise.resolve();
  extract.on('entry', (header, stream, next) => {
    // When the extractor is destroyed, the current entry stream is destroyed with the same error; it must not be an
    // unhandled 'error' event (the handler sees the failure through its iterator, or has finished with the entry).
    stream.on('error', noop);
    inflight = tar.handle(header, stream).then(
      () => next(),
      (e: unknown) => {
        fail(e);
        next(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
  const finished = new Promise<void>((resolve, reject) => {
    extract.on('finish', () => resolve());
    extract.on('error', (e) => {
      fail(tarError(layer, e));
      decoded.destroy();
      reject(e);
    });
    extract.on('close', () => reject(new Error('tar stream closed early')));
  });
  finished.catch(noop);

  const offAbort = onAbort(ctx.signal, () => {
    const err = new AbortedError();
    fail(err);
    decoded.destroy(err);
    extract.destroy(err);
  });
  try {
    for await (const chunk of decoded as AsyncIterable<Buffer>) {
      if (!extract.write(chunk)) await drained(extract);
    }
    // The decoded stream ended, so the blob's size and digest matched (VerifyingStream fails in its flush otherwise;
    // a staged copy was verified before it was read).
    extract.end(undefined);
    await finished;
  } catch (e) {
    fail(e);
    decoded.destroy();
    extract.destroy(e instanceof Error ? e : new Error(String(e)));
  } finally {
    offAbort();
  }
  await inflight;
  if (!failed && ctx.signal?.aborted) fail(new AbortedError());
  if (failed) {
    await tar.cleanup();
    throw firstError;
  }
  try {
    await tar.commit();
  } catch (e) {
    await tar.cleanup();
    throw e;
  }
  return tar.results();
}

class TarLayer {
  private readonly ops: TarOp[] = [];
  private readonly byRel = new Map<string, TarOp>();
  private readonly temps = new Set<string>();
  private readonly createdDirs: string[] = [];

  constructor(
    private readonly layer: Descriptor,
    private readonly ctx: Ctx,
    private readonly names: EntryNames,
  ) {}

  async handle(header: TarHeader, stream: AsyncIterable<unknown>): Promise<void> {
    const type = header.type ?? 'unknown';
    const name = this.names.map(header.name);
    if (type === 'directory' && name === undefined) {
      await drain(stream);
      return;
    }
    if (name === undefined) throw new UnsafePathError(header.name, 'names the output directory itself');
    const rel = normalizeEntryPath(name);
    const abs = resolveEntryPath(this.ctx.root, name);
    switch (type) {
      case 'file':
      case 'contiguous-file':
        await this.file(header, name, rel, abs, stream);
        break;
      case 'directory':
        await this.dir(header, name, rel, abs);
        break;
      case 'symlink':
        await this.symlink(header, name, rel, abs);
        break;
      case 'link':
        await this.hardlink(header, name, rel, abs);
        break;
      default:
        this.ctx.opts.onWarning?.(`layer ${this.layer.digest}: skipping ${type} entry ${JSON.stringify(rel)}`);
        this.add({ kind: 'skipped', rel });
    }
    await drain(stream);
  }

  private async file(header: TarHeader, name: string, rel: string, abs: string, stream: AsyncIterable<unknown>): Promise<void> {
    await this.prepare(name, rel, 'file');
    const st = await lstatOrUndefined(abs);
    const size = header.size ?? 0;
    if (st && (st.isDirectory() || (!this.ctx.opts.force && !(st.isFile() && st.size === size)))) {
      throw existsError(rel, this.ctx.root, st);
    }
    const tmp = tempPath(abs);
    this.temps.add(tmp);
    const mode = (header.mode ?? DEFAULT_FILE_MODE) & PERM_MASK;
    const hash = createHash('sha256');
    let n = 0;
    const fh = await fsp.open(tmp, 'wx', 0o600);
    try {
      for await (const c of stream) {
        const chunk = c as Buffer;
        hash.update(chunk);
        n += chunk.length;
        await writeAll(fh, chunk);
      }
      await fh.chmod(mode);
      if (header.mtime) await fh.utimes(header.mtime, header.mtime);
      await fh.sync();
    } finally {
      await fh.close();
    }
    const digest = 'sha256:' + hash.digest('hex');
    if (st) {
      if (st.isFile() && st.size === n && (await digestOfFile(abs, 'sha256', this.ctx.signal)) === digest) {
        await fsp.rm(tmp, { force: true });
        this.temps.delete(tmp);
        this.add({ kind: 'file', rel, abs, size: n, digest, mode, mtime: header.mtime, action: 'kept' });
        return;
      }
      if (!this.ctx.opts.force) throw existsError(rel, this.ctx.root, st);
    }
    this.add({ kind: 'file', rel, abs, tmp, size: n, digest, mode, mtime: header.mtime, action: 'written' });
  }

  private async dir(header: TarHeader, name: string, rel: string, abs: string): Promise<void> {
    await this.prepare(name, rel, 'dir');
    // At least rwx for the owner, so we can create the directory's contents (and extract again later).
    const mode = ((header.mode ?? DEFAULT_DIR_MODE) & PERM_MASK) | 0o700;
    const st = await lstatOrUndefined(abs);
    if (!st) {
      await fsp.mkdir(abs, { mode });
      this.createdDirs.push(abs);
    } else if (st.isSymbolicLink()) {
      throw new UnsafePathError(name, 'a symlink exists where the archive has a directory');
    } else if (!st.isDirectory()) {
      throw existsError(rel, this.ctx.root, st);
    }
    this.add({ kind: 'dir', rel, abs, mode, mtime: header.mtime });
  }

  private async symlink(header: TarHeader, name: string, rel: string, abs: string): Promise<void> {
    const target = header.linkname ?? '';
    checkLinkTarget(this.ctx.root, name, target, { isSymlink: (p) => this.isSymlink(p) });
    await this.prepare(name, rel, 'symlink');
    const st = await lstatOrUndefined(abs);
    let action: 'written' | 'kept' = 'written';
    if (st) {
      if (st.isSymbolicLink() && (await fsp.readlink(abs)) === target) action = 'kept';
      else if (!this.ctx.opts.force || st.isDirectory()) throw existsError(rel, this.ctx.root, st);
    }
    this.add({ kind: 'symlink', rel, abs, target, mtime: header.mtime, action });
  }

  private async hardlink(header: TarHeader, name: string, rel: string, abs: string): Promise<void> {
    // A hardlink's target is an archive path: it is mapped like the entry names.
    const linkname = this.names.map(header.linkname ?? '') ?? header.linkname ?? '';
    const targetAbs = checkLinkTarget(this.ctx.root, name, linkname, { kind: 'hardlink' });
    const targetRel = normalizeEntryPath(linkname);
    if (targetRel === rel) {
      this.ctx.opts.onWarning?.(`layer ${this.layer.digest}: ignoring hardlink ${JSON.stringify(rel)} to itself`);
      return;
    }
    const t = this.byRel.get(targetRel);
    if (!t || (t.kind !== 'file' && t.kind !== 'hardlink')) {
      throw new UnsafePathError(`${name} -> ${linkname}`, 'hardlink target is not a file extracted earlier from this layer');
    }
    await this.prepare(name, rel, 'hardlink');
    const st = await lstatOrUndefined(abs);
    let action: 'written' | 'kept' = 'written';
    if (st) {
      if (st.isFile() && st.size === t.size && (await digestOfFile(abs, 'sha256', this.ctx.signal)) === t.digest) action = 'kept';
      else if (!this.ctx.opts.force || st.isDirectory()) throw existsError(rel, this.ctx.root, st);
    }
    this.add({ kind: 'hardlink', rel, abs, target: targetAbs, size: t.size, digest: t.digest, action });
  }

  /**
   * Before writing at `rel`: no parent may be a symlink or a non-directory created earlier by this tar, no existing
   * parent on disk may be a symlink (lstat each one); missing parents are created. A repeated path replaces the
   * earlier entry (tar semantics), unless one of the two is a directory.
   */
  private async prepare(name: string, rel: string, kind: TarOp['kind']): Promise<void> {
    const segs = rel.split('/');
    for (let i = 1; i < segs.length; i++) {
      const p = segs.slice(0, i).join('/');
      const op = this.byRel.get(p);
      if (op?.kind === 'symlink') throw new UnsafePathError(name, `its parent ${p} is a symlink created by this archive`);
      if (op && op.kind !== 'dir') {
        throw new ModctlError('E_TAR_CONFLICT', `layer ${this.layer.digest}: ${rel} is inside ${p}, which the archive made a ${op.kind}`);
      }
    }
    const prev = this.byRel.get(rel);
    if (prev) {
      if ((prev.kind === 'dir') !== (kind === 'dir')) {
        throw new ModctlError('E_TAR_CONFLICT', `layer ${this.layer.digest}: ${rel} appears both as a directory and as a ${prev.kind === 'dir' ? kind : prev.kind}`);
      }
      prev.dead = true;
      if (prev.kind === 'file' && prev.tmp) {
        await fsp.rm(prev.tmp, { force: true });
        this.temps.delete(prev.tmp);
      }
      this.byRel.delete(rel);
    }
    await ensureParentDirs(this.ctx.root, rel, this.createdDirs);
  }

  private add(op: TarOp): void {
    this.ops.push(op);
    if (op.kind !== 'skipped') this.byRel.set(op.rel, op);
  }

  /** Is this relative path a symlink, either pending in this archive or already on disk? */
  private isSymlink(rel: string): boolean {
    if (this.byRel.get(rel)?.kind === 'symlink') return true;
    try {
      return lstatSync(path.join(this.ctx.root, ...rel.split('/'))).isSymbolicLink();
    } catch {
      return false;
    }
  }

  /** The blob is verified: move everything into place, then restore directory modes and mtimes deepest first. */
  async commit(): Promise<void> {
    for (const op of this.ops) {
      if (op.dead) continue;
      switch (op.kind) {
        case 'file':
          if (op.action === 'written' && op.tmp) {
            await fsp.rename(op.tmp, op.abs);
            this.temps.delete(op.tmp);
          } else {
            await applyModeTime(op.abs, op.mode, op.mtime);
          }
          break;
        case 'symlink':
          if (op.action === 'written') {
            const tmp = tempPath(op.abs);
            this.temps.add(tmp);
            await fsp.symlink(op.target, tmp);
            if (op.mtime) await fsp.lutimes(tmp, op.mtime, op.mtime).catch(noop);
            await fsp.rename(tmp, op.abs);
            this.temps.delete(tmp);
          }
          break;
        case 'hardlink':
          if (op.action === 'written') {
            const tmp = tempPath(op.abs);
            this.temps.add(tmp);
            await fsp.link(op.target, tmp);
            await fsp.rename(tmp, op.abs);
            // rename(2) is a no-op when both names are links to the same inode: drop the temp name then.
            await fsp.rm(tmp, { force: true });
            this.temps.delete(tmp);
          }
          break;
        default:
          break;
      }
    }
    const dirs = this.ops.filter((o): o is Extract<TarOp, { kind: 'dir' }> => o.kind === 'dir' && !o.dead);
    dirs.sort((a, b) => b.rel.split('/').length - a.rel.split('/').length);
    for (const d of dirs) await applyModeTime(d.abs, d.mode, d.mtime);
  }

  /** Remove every temp file and every directory this layer created that is still empty. */
  async cleanup(): Promise<void> {
    for (const t of this.temps) await fsp.rm(t, { force: true }).catch(noop);
    this.temps.clear();
    await removeEmptyDirs(this.createdDirs);
  }

  results(): ExtractedFile[] {
    const out: ExtractedFile[] = [];
    for (const op of this.ops) {
      if (op.dead || op.kind === 'dir') continue;
      if (op.kind === 'skipped') out.push({ path: op.rel, size: 0, action: 'skipped' });
      else if (op.kind === 'symlink') out.push({ path: op.rel, size: 0, action: op.action });
      else out.push({ path: op.rel, size: op.size, digest: op.digest, action: op.action });
    }
    return out;
  }
}

/**
 * Tar entry name → name under the output root, for a layer unpacked under directory `dir` with `strip` removed from
 * every entry (both from a LayerTarget, both checked here). Without either, names pass through unchanged. Returns
 * undefined for names that stand for the output root itself.
 */
class EntryNames {
  private readonly dir?: string;
  private readonly strip?: string;

  constructor(dir: string | undefined, strip: string | undefined) {
    if (dir !== undefined) this.dir = normalizeEntryPath(dir);
    if (strip !== undefined) this.strip = normalizeEntryPath(strip);
  }

  map(name: string): string | undefined {
    if (this.dir === undefined && this.strip === undefined) return isRootEntryPath(name) ? undefined : name;
    // Checked before any prefix is removed or added, so `/x`, `a/../b` and friends are refused as they are.
    let rel = isRootEntryPath(name) ? '' : normalizeEntryPath(name);
    if (this.strip !== undefined) {
      if (rel === this.strip) rel = '';
      else if (rel.startsWith(this.strip + '/')) rel = rel.slice(this.strip.length + 1);
      else throw new UnsafePathError(name, `entry is outside ${this.strip}/, the directory this layer holds`);
    }
    const joined = this.dir === undefined ? rel : rel === '' ? this.dir : `${this.dir}/${rel}`;
    return joined === '' ? undefined : joined;
  }
}

function tarError(layer: Descriptor, e: unknown): unknown {
  if (e instanceof ModctlError) return e;
  const msg = e instanceof Error ? e.message : String(e);
  return new ModctlError('E_TAR_INVALID', `layer ${layer.digest}: invalid tar stream: ${msg}`, {
    cause: e,
    hint: 'the layer is corrupt or its media type does not match its content',
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Helpers.

function noop(): void {
  /* ignore */
}

/** Counts bytes passing through (progress), without buffering. */
class CountingStream extends Transform {
  constructor(private readonly onBytes: (n: number) => void) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.onBytes(chunk.length);
    cb(null, chunk);
  }
}

function onAbort(signal: AbortSignal | undefined, fn: () => void): () => void {
  if (!signal) return noop;
  if (signal.aborted) {
    fn();
    return noop;
  }
  signal.addEventListener('abort', fn, { once: true });
  return () => signal.removeEventListener('abort', fn);
}

/** Wait for the tar extractor (a streamx writable) to drain; rejects if it is (being) destroyed instead. */
function drained(w: TarExtract): Promise<void> {
  if (w.destroying) return Promise.reject(new Error('tar stream stopped'));
  return new Promise((resolve, reject) => {
    const cleanup = () => {
      w.off('drain', onDrain);
      w.off('close', onClose);
    };
    const onDrain = () => {
      cleanup();
      resolve();
    };
    const onClose = () => {
      cleanup();
      reject(new Error('tar stream stopped'));
    };
    w.on('drain', onDrain);
    w.on('close', onClose);
  });
}

async function drain(stream: AsyncIterable<unknown>): Promise<void> {
  for await (const _chunk of stream) {
    /* discard */
  }
}

async function writeAll(fh: FileHandle, chunk: Buffer): Promise<void> {
  let off = 0;
  while (off < chunk.length) {
    const { bytesWritten } = await fh.write(chunk, off, chunk.length - off);
    off += bytesWritten;
  }
}

async function lstatOrUndefined(p: string): Promise<Stats | undefined> {
  try {
    return await fsp.lstat(p);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/**
 * Create the missing parents of `rel` under `root`, one component at a time. An existing component that is a
 * symlink is refused, so a symlinked directory inside the output cannot redirect writes elsewhere.
 */
async function ensureParentDirs(root: string, rel: string, created: string[]): Promise<void> {
  const segs = rel.split('/');
  let cur = root;
  for (let i = 0; i < segs.length - 1; i++) {
    cur = path.join(cur, segs[i]);
    const st = await lstatOrUndefined(cur);
    if (!st) {
      try {
        await fsp.mkdir(cur, { mode: DEFAULT_DIR_MODE });
        created.push(cur);
      } catch (e) {
        // Another layer may have created it meanwhile; re-check what is there.
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        const again = await fsp.lstat(cur);
        if (!again.isDirectory()) throw new UnsafePathError(rel, `${segs.slice(0, i + 1).join('/')} is not a directory`);
      }
    } else if (st.isSymbolicLink()) {
      throw new UnsafePathError(rel, `${segs.slice(0, i + 1).join('/')} is a symlink inside the output directory`);
    } else if (!st.isDirectory()) {
      throw new ModctlError('E_EXISTS', `cannot create ${rel}: ${segs.slice(0, i + 1).join('/')} exists and is not a directory`, {
        hint: 'move the file out of the way or choose another output directory',
      });
    }
  }
}

async function removeEmptyDirs(dirs: string[]): Promise<void> {
  for (let i = dirs.length - 1; i >= 0; i--) await fsp.rmdir(dirs[i]).catch(noop);
  dirs.length = 0;
}

function tempPath(abs: string): string {
  let base = path.basename(abs);
  while (Buffer.byteLength(base) > MAX_TEMP_BASE_BYTES) base = Array.from(base).slice(0, -1).join('');
  return path.join(path.dirname(abs), `.${base}.modctl-tmp-${randomBytes(6).toString('hex')}`);
}

async function applyModeTime(p: string, mode: number, mtime?: Date): Promise<void> {
  await fsp.chmod(p, mode);
  if (mtime) await fsp.utimes(p, mtime, mtime);
}

function existsError(rel: string, root: string, st: Stats): ModctlError {
  const what = st.isDirectory() ? 'a directory' : st.isSymbolicLink() ? 'a symlink' : 'a different file';
  return new ModctlError('E_EXISTS', `refusing to overwrite ${rel} in ${root}: ${what} already exists there`, {
    hint: st.isDirectory() ? 'remove the directory or choose another output directory' : 'use --force to overwrite',
  });
}

async function checkSpace(dir: string, needed: number, layer: Descriptor): Promise<void> {
  let avail: number;
  try {
    const s = await fsp.statfs(dir);
    avail = Number(s.bavail) * Number(s.bsize);
  } catch {
    return; // statfs unsupported here: the write itself will report ENOSPC
  }
  if (needed > avail) {
    throw new ModctlError(
      'E_NO_SPACE',
      `not enough disk space in ${dir} for layer ${layer.digest}: needs ${formatBytes(needed)}, ${formatBytes(avail)} available`,
      { hint: 'free some space or extract to another directory' },
    );
  }
}

function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(1)} ${units[i]} (${n} bytes)`;
}

/** Serialise work per key (target path) so two layers naming the same file do not race. */
class KeyedLock {
  private readonly tails = new Map<string, Promise<void>>();
  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const tail = prev.then(() => mine);
    this.tails.set(key, tail);
    await prev;
    try {
      return await fn();
    } finally {
      release();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }
}
