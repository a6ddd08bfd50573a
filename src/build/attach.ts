import { skipBytes } from '../util/stream.js';
/**
 * `modctl attach`: add one file to an existing artifact as a new layer (or replace the layer with the same path, with
 * --force) and tag the result. The source manifest and config come from the local store, or from the registry with
 * --output-remote. Everything else is kept: manifest annotations and fields, every config field (diffIds rebuilt in
 * layer order; createdAt kept unless SOURCE_DATE_EPOCH is given), and the build order of layers (CONFIG, MODEL, CODE,
 * DOC, DATASET kinds, sorted by path inside a kind). The new config is validated against the ModelPack schema.
 */
import { createReadStream, promises as fsp } from 'node:fs';
import path from 'node:path';
import { PassThrough, pipeline, type Readable } from 'node:stream';
import { loadManifest } from '../content/artifact.js';
import type { LocalStore } from '../content/local-store.js';
import { AbortedError, DigestMismatchError, ModctlError, RegistryError, UsageError } from '../errors.js';
import { digestOf } from '../oci/digest.js';
import { artifactType, configMediaType, layerFilepath, parseLayerMediaType, MT_OCI_MANIFEST, type IdFamily, type LayerKind } from '../oci/media-types.js';
import { formatReference, parseReference, type Reference } from '../oci/reference.js';
import { ManifestSchema, MAX_MANIFEST_BYTES, type Descriptor, type Manifest, type ModelConfig } from '../oci/types.js';
import { RegistryClient, type RemoteOptions } from '../remote/index.js';
import { readCapped } from '../remote/http.js';
import { mapLimit } from '../util/limit.js';
import type { ProgressFn } from '../util/progress.js';
import { createdAtFor } from './builder.js';
import { assertValidConfig } from './config.js';
import { DigestCache } from './digest-cache.js';
import { layerDescriptor, writeTarLayer, type LayerOptions } from './layer.js';
import { cmpBytes, type SourceEntry } from './sources.js';
import { fileEntry, pushBytes, pushLayer } from './upload-file.js';

export interface AttachOptions {
  /** The file as typed on the command line. */
  file: string;
  cwd: string;
  source: string;
  target: string;
  destinationDir?: string;
  force?: boolean;
  raw?: boolean;
  /** Read the source from, and push the result to, the registry instead of the local store. */
  outputRemote?: boolean;
  remote?: RemoteOptions;
  /** Parsed JSON of --config: used as the config (its modelfs.diffIds are recomputed). */
  config?: unknown;
  sourceDateEpoch?: number;
  /** The local store (local mode) — required unless outputRemote. */
  store?: LocalStore;
  /** Store directory for the digest cache. */
  cacheDir: string;
  concurrency?: number;
  signal?: AbortSignal;
  onProgress?: ProgressFn;
  onWarning?: (msg: string) => void;
}

export interface AttachResult {
  reference: string;
  source: string;
  digest: string;
  size: number;
  mediaType: string;
  artifactType?: string;
  config: { digest: string; size: number };
  layer: { path: string; mediaType: string; digest: string; size: number };
  /** A layer with the same path was replaced (--force). */
  replaced: boolean;
  layers: number;
  pushed: boolean;
  /** Remote mode: blobs sent (new layer, config, blobs copied from another repository). */
  blobsUploaded: number;
  blobsMounted: number;
  blobsSkipped: number;
  bytesUploaded: number;
}

/** Build order: CONFIG (weight.config), MODEL (weight), CODE, DOC, DATASET; unknown media types last. */
const KIND_RANK: Record<LayerKind, number> = { 'weight.config': 0, weight: 1, code: 2, doc: 3, dataset: 4 };

function rankOf(d: Descriptor): number {
  const p = parseLayerMediaType(d.mediaType);
  return p ? KIND_RANK[p.kind] : 5;
}

function familyOf(m: Manifest): IdFamily {
  if (m.artifactType === artifactType('cnai') || m.config.mediaType === configMediaType('cnai')) return 'cnai';
  const l = m.layers.map((x) => parseLayerMediaType(x.mediaType)).find(Boolean);
  return l?.family ?? 'cncf';
}

function isPlainObject(v: unknown): v is Record<string, any> {
  return !!v && typeof v === 'object' && !Array.isArray(v);
}

interface Loaded {
  manifest: Manifest;
  manifestJson: Record<string, any>;
  config: Record<string, any>;
}

function parseManifest(bytes: Buffer, what: string): { manifest: Manifest; json: Record<string, any> } {
  let json: any;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new ModctlError('E_MANIFEST_INVALID', `${what} is not valid JSON`);
  }
  const r = ManifestSchema.safeParse(json);
  if (!r.success) throw new ModctlError('E_MANIFEST_INVALID', `${what} is not an image manifest (an index or another kind of artifact?)`);
  return { manifest: r.data, json };
}

function parseConfig(bytes: Buffer, what: string): Record<string, any> {
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new ModctlError('E_CONFIG_INVALID', `${what} is not valid JSON`);
  }
  if (!isPlainObject(json)) throw new ModctlError('E_CONFIG_INVALID', `${what} is not a JSON object`);
  return json;
}

async function loadLocal(store: LocalStore, source: string): Promise<Loaded> {
  const a = await loadManifest(store, source);
  const { manifest, json } = parseManifest(a.manifestBytes, `manifest of ${source}`);
  const config = parseConfig(await store.readBlob(manifest.config.digest), `config of ${source}`);
  return { manifest, manifestJson: json, config };
}

async function loadRemote(client: RegistryClient, ref: Reference, source: string): Promise<Loaded> {
  const m = await client.getManifest(ref.repository, ref.digest ?? ref.tag ?? 'latest');
  const { manifest, json } = parseManifest(m.bytes, `manifest of ${source}`);
  const cd = manifest.config;
  if (cd.size > MAX_MANIFEST_BYTES) throw new ModctlError('E_TOO_LARGE', `the config of ${source} is ${cd.size} bytes, over the ${MAX_MANIFEST_BYTES}-byte limit`);
  const res = await client.getBlob(ref.repository, cd.digest);
  const { bytes } = await readCapped(res.body, cd.size + 1);
  if (bytes.length !== cd.size) throw new RegistryError(client.registry, `pull config of ${source}`, `size ${bytes.length} differs from the manifest's ${cd.size}`);
  const actual = digestOf(bytes);
  if (actual !== cd.digest) throw new DigestMismatchError(cd.digest, actual, 'config');
  return { manifest, manifestJson: json, config: parseConfig(bytes, `config of ${source}`) };
}

/** diffIds of the source layers, by index (tolerating legacy `diff_ids`; uncompressed layers fall back to their digest). */
function sourceDiffIds(m: Manifest, config: Record<string, any>, source: string): string[] {
  const fs = isPlainObject(config.modelfs) ? config.modelfs : {};
  const ids: unknown = Array.isArray(fs.diffIds) ? fs.diffIds : fs.diff_ids;
  const list = Array.isArray(ids) && ids.length === m.layers.length ? (ids as string[]) : undefined;
  return m.layers.map((l, i) => {
    if (list && typeof list[i] === 'string') return list[i];
    const enc = parseLayerMediaType(l.mediaType)?.encoding;
    if (enc === 'raw' || enc === 'tar') return l.digest;
    throw new ModctlError('E_CONFIG_INVALID', `the config of ${source} has no diffId for layer ${layerFilepath(l.annotations) ?? l.digest}`, {
      hint: 'its modelfs.diffIds do not match the manifest layers',
    });
  });
}


export async function attach(opts: AttachOptions): Promise<AttachResult> {
  const src = parseReference(opts.source);
  const dst = parseReference(opts.target);
  if (dst.digest || !dst.tag) throw new UsageError(`attach target ${opts.target} must be a tag, not a digest`, { code: 'E_REFERENCE' });
  const srcName = formatReference(src);
  const dstName = formatReference(dst);
  const entry = await fileEntry(opts.file, opts.cwd, opts.destinationDir);
  const remote = !!opts.outputRemote;
  if (!remote && !opts.store) throw new UsageError('attach needs the local store (or --output-remote)');

  // Clients (remote mode): one per registry; the source client doubles as the target's when they share a registry.
  const ctl = new AbortController();
  const parent = opts.signal ?? opts.remote?.signal;
  const onAbort = () => ctl.abort();
  if (parent?.aborted) throw new AbortedError();
  parent?.addEventListener('abort', onAbort, { once: true });
  const ro: RemoteOptions = { ...(opts.remote ?? {}), signal: ctl.signal };
  const sameRegistry = src.registry === dst.registry;
  const sameRepo = sameRegistry && src.repository === dst.repository;
  let srcClient: RegistryClient | undefined;
  let dstClient: RegistryClient | undefined;
  const cache = await DigestCache.load(opts.cacheDir);
  try {
    let loaded: Loaded;
    if (remote) {
      srcClient = new RegistryClient(src.registry, { ...ro, concurrency: opts.concurrency });
      dstClient = sameRegistry ? srcClient : new RegistryClient(dst.registry, { ...ro, concurrency: opts.concurrency });
      dstClient.addScopeHints(dstClient.pushScope(dst.repository), ...(sameRegistry && !sameRepo ? [dstClient.pullScope(src.repository)] : []));
      loaded = await loadRemote(srcClient, src, srcName);
    } else {
      loaded = await loadLocal(opts.store!, opts.source);
    }
    const { manifest, manifestJson } = loaded;
    const family = familyOf(manifest);

    // Duplicate path?
    const existing = manifest.layers.filter((l) => layerFilepath(l.annotations) === entry.relPath);
    if (existing.length && !opts.force) {
      throw new ModctlError('E_EXISTS', `file ${entry.relPath} already exists in ${srcName}; use --force to replace it`, { exitCode: 1 });
    }
    const oldIds = sourceDiffIds(manifest, loaded.config, srcName);

    // The new layer's blob.
    const layerOpts: LayerOptions = { family, raw: opts.raw ?? true, sourceDateEpoch: opts.sourceDateEpoch };
    let newDesc: Descriptor;
    const counts = { blobsUploaded: 0, blobsMounted: 0, blobsSkipped: 0, bytesUploaded: 0 };
    if (remote) {
      const r = await pushLayer(
        { client: dstClient!, repo: dst.repository, cache, layerOpts, contextReal: path.dirname(entry.absPath), signal: ctl.signal, onProgress: opts.onProgress },
        entry,
      );
      newDesc = r.desc;
      if (r.uploaded) counts.blobsUploaded++;
      else counts.blobsSkipped++;
      counts.bytesUploaded += r.bytesUploaded;
    } else {
      newDesc = layerDescriptor(entry, await localLayer(opts.store!, cache, entry, layerOpts, opts.onProgress, ctl.signal), layerOpts);
    }
    await cache.save().catch((e) => opts.onWarning?.(`could not save the digest cache: ${(e as Error).message}`));

    // Layers in build order, diffIds alongside.
    const rows = manifest.layers
      .map((l, i) => ({ desc: l, diffId: oldIds[i] }))
      .filter((r) => layerFilepath(r.desc.annotations) !== entry.relPath);
    rows.push({ desc: newDesc, diffId: newDesc.digest });
    const sorted = rows
      .map((r, i) => ({ ...r, i }))
      .sort((a, b) => rankOf(a.desc) - rankOf(b.desc) || cmpBytes(layerFilepath(a.desc.annotations) ?? '', layerFilepath(b.desc.annotations) ?? '') || a.i - b.i);

    // Config: the source's (or --config), every field kept; diffIds in the new layer order.
    const base = opts.config !== undefined ? opts.config : loaded.config;
    if (!isPlainObject(base)) throw new UsageError('--config must hold a JSON object');
    const config: Record<string, any> = structuredClone(base);
    const modelfs = isPlainObject(config.modelfs) ? { ...config.modelfs } : {};
    delete modelfs.diff_ids;
    config.modelfs = { ...modelfs, type: 'layers', diffIds: sorted.map((r) => r.diffId) };
    if (opts.sourceDateEpoch !== undefined) {
      const { createdAt: _old, ...rest } = isPlainObject(config.descriptor) ? config.descriptor : {};
      config.descriptor = { createdAt: createdAtFor(opts.sourceDateEpoch), ...rest };
    }
    if (!isPlainObject(config.descriptor)) config.descriptor = {};
    if (!isPlainObject(config.config)) config.config = {};
    try {
      assertValidConfig(config as unknown as ModelConfig);
    } catch (e) {
      if (!(e instanceof ModctlError)) throw e;
      throw new ModctlError(e.code, e.message, {
        hint: opts.config !== undefined ? 'fix the --config file; only ModelPack config fields are allowed' : `the config of ${srcName} is not valid ModelPack; pass a corrected one with --config`,
      });
    }
    const configBytes = Buffer.from(JSON.stringify(config));
    const configDesc: Descriptor = { ...manifest.config, digest: digestOf(configBytes), size: configBytes.length };

    const newManifest: Record<string, any> = { ...manifestJson, config: configDesc, layers: sorted.map((r) => r.desc) };
    const manifestBytes = Buffer.from(JSON.stringify(newManifest));
    const mediaType = typeof manifestJson.mediaType === 'string' ? manifestJson.mediaType : MT_OCI_MANIFEST;
    const manifestDigest = digestOf(manifestBytes);

    if (remote) {
      const dc = dstClient!;
      // Blobs kept from the source: already there when the repository is the same; else mount or copy them.
      if (!sameRepo) {
        const kept = sorted.map((r) => r.desc).filter((d) => d.digest !== newDesc.digest);
        const unique = [...new Map(kept.map((d) => [d.digest, d])).values()];
        await mapLimit(unique, opts.concurrency ?? 5, async (d) => {
          const present = await dc.headBlob(dst.repository, d.digest);
          if (present && (present.size === d.size || present.size < 0)) {
            counts.blobsSkipped++;
            return;
          }
          opts.onProgress?.({ type: 'start', id: d.digest, label: layerFilepath(d.annotations) ?? d.digest, total: d.size });
          const r = await dc.uploadBlob(dst.repository, d, (offset) => openFromSource(srcClient!, src.repository, d, offset), {
            mountFrom: sameRegistry ? [src.repository] : undefined,
            onProgress: opts.onProgress,
            signal: ctl.signal,
          });
          if (r.mounted) counts.blobsMounted++;
          else counts.blobsUploaded++;
          counts.bytesUploaded += r.bytesUploaded;
          opts.onProgress?.({ type: 'done', id: d.digest, skipped: r.mounted });
        });
      }
      const cfg = await pushBytes(dc, dst.repository, configBytes, ctl.signal);
      if (cfg.uploaded) counts.blobsUploaded++;
      else counts.blobsSkipped++;
      counts.bytesUploaded += cfg.bytesUploaded;
      await dc.putManifest(dst.repository, manifestDigest, manifestBytes, mediaType);
      await dc.putManifest(dst.repository, dst.tag, manifestBytes, mediaType);
    } else {
      const store = opts.store!;
      await store.putBytes(configBytes);
      const m = await store.putBytes(manifestBytes);
      const desc: Descriptor = { mediaType, digest: m.digest, size: m.size };
      if (typeof newManifest.artifactType === 'string') desc.artifactType = newManifest.artifactType;
      await store.tag(dstName, desc);
    }

    return {
      reference: dstName,
      source: srcName,
      digest: manifestDigest,
      size: manifestBytes.length + configBytes.length + sorted.reduce((a, r) => a + r.desc.size, 0),
      mediaType,
      artifactType: typeof newManifest.artifactType === 'string' ? newManifest.artifactType : undefined,
      config: { digest: configDesc.digest, size: configDesc.size },
      layer: { path: entry.relPath, mediaType: newDesc.mediaType, digest: newDesc.digest, size: newDesc.size },
      replaced: existing.length > 0,
      layers: sorted.length,
      pushed: remote,
      ...counts,
    };
  } catch (e) {
    if (parent?.aborted) {
      await dstClient?.cancelOpenUploads();
      throw new AbortedError();
    }
    throw e;
  } finally {
    parent?.removeEventListener('abort', onAbort);
    await srcClient?.close();
    if (dstClient && dstClient !== srcClient) await dstClient.close();
  }
}

/** The blob from the source repository from `offset`, as a stream the upload can consume right away. */
function openFromSource(client: RegistryClient, repo: string, d: Descriptor, offset: number): Readable {
  const out = new PassThrough({ highWaterMark: 1 << 20 });
  client.getBlob(repo, d.digest, { offset }).then(
    (res) => {
      const body = offset > 0 && res.status === 200 ? res.body.pipe(skipBytes(offset)) : res.body;
      if (body !== res.body) res.body.on('error', (e) => body.destroy(e));
      pipeline(body, out, (err) => {
        if (err) out.destroy(err);
      });
    },
    (e) => out.destroy(e),
  );
  return out;
}

/** Local mode: the new layer's blob into the store (digest cache first), reading the file once. */
async function localLayer(
  store: LocalStore,
  cache: DigestCache,
  e: SourceEntry,
  layerOpts: LayerOptions,
  onProgress: ProgressFn | undefined,
  signal: AbortSignal,
): Promise<{ digest: string; size: number }> {
  const progress = onProgress ?? (() => {});
  const id = `layer:${e.relPath}`;
  progress({ type: 'start', id, label: e.relPath, total: e.stat.size });
  const key = DigestCache.layerKey(e, layerOpts.raw, layerOpts.sourceDateEpoch);
  const hit = cache.get(key);
  if (hit && (await store.hasBlob(hit.digest, hit.size))) {
    progress({ type: 'done', id, skipped: true });
    return hit;
  }
  let blob: { digest: string; size: number };
  if (layerOpts.raw) {
    const src = createReadStream(e.absPath, { highWaterMark: 1 << 20 });
    src.on('data', (c: string | Buffer) => progress({ type: 'advance', id, bytes: c.length }));
    blob = await store.ingest(src, undefined, signal);
    if (blob.size !== e.stat.size) {
      throw new ModctlError('E_FILE_CHANGED', `${e.relPath} changed size while it was being read (${e.stat.size} → ${blob.size} bytes)`);
    }
  } else {
    blob = await writeTarLayer(store, e, path.dirname(e.absPath), layerOpts, (n) => progress({ type: 'advance', id, bytes: n }), signal);
  }
  cache.set(key, blob);
  progress({ type: 'done', id });
  return blob;
}

/** Read and parse a --config JSON file. */
export async function readConfigFile(file: string, cwd: string): Promise<unknown> {
  const p = path.resolve(cwd, file);
  let text: string;
  try {
    const st = await fsp.stat(p);
    if (st.size > MAX_MANIFEST_BYTES) throw new UsageError(`--config ${file} is over ${MAX_MANIFEST_BYTES} bytes`);
    text = await fsp.readFile(p, 'utf8');
  } catch (e) {
    if (e instanceof ModctlError) throw e;
    throw new UsageError(`cannot read --config ${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new UsageError(`--config ${file} is not valid JSON`);
  }
}
