/**
 * Push and pull of a manifest DAG between the local store and a registry (the oras-go `Copy` shape, specialised):
 * blobs in parallel up to `concurrency` (HEAD/skip-present first), then configs, then child manifests, the root by
 * digest, and finally the tag. The first failure cancels the other transfers; an abort cancels open upload sessions
 * and throws AbortedError.
 */
import path from 'node:path';
import { UploadSessions } from './upload-sessions.js';
import { UPLOAD_HWM } from './upload.js';
import { AbortedError, ModctlError, NotFoundError, RegistryError, UsageError } from '../errors.js';
import { isManifestType, type LocalStore } from '../content/local-store.js';
import { layerFilepath } from '../oci/media-types.js';
import { formatReference, type Reference } from '../oci/reference.js';
import { ManifestSchema, IndexSchema, type Descriptor } from '../oci/types.js';
import { mapUntilFailure } from '../util/limit.js';
import type { ProgressFn } from '../util/progress.js';
import { assertBlobDescriptor, downloadBlob } from './download.js';
import { shortDigest } from './errors.js';
import { RegistryClient, type FetchedManifest, type RemoteOptions } from './repository.js';

export interface TransferOptions extends RemoteOptions {
  /** Parallel blob transfers (default 5). */
  concurrency?: number;
  /** Bytes per chunked PATCH; 0/undefined = monolithic PUT (≤ 4 MiB) or one streamed PATCH. */
  chunkSize?: number;
  /** Other repositories on the target registry that may hold the blobs: cross-repository mount is tried first. */
  mountFrom?: string[];
  onProgress?: ProgressFn;
}

export interface PushResult {
  reference: string;
  digest: string;
  size: number;
  blobsPushed: number;
  blobsSkipped: number;
  blobsMounted: number;
  bytesUploaded: number;
}

export interface PullResult {
  reference: string;
  digest: string;
  size: number;
  blobsFetched: number;
  blobsSkipped: number;
  bytesDownloaded: number;
  mediaType: string;
}

export const DEFAULT_CONCURRENCY = 5;
/** Nested indexes deeper than this are refused (a loop or a hostile graph). */
const MAX_DEPTH = 4;

interface Node {
  descriptor: Descriptor;
  bytes: Buffer;
  json: any;
}

interface Graph {
  /** Manifests in push order: children before parents, root last. */
  manifests: Node[];
  layers: Map<string, Descriptor>;
  configs: Map<string, Descriptor>;
}

function label(d: Descriptor): string {
  return layerFilepath(d.annotations) ?? shortDigest(d.digest);
}

function addBlobs(graph: Graph, json: any, where: string, registry = 'local'): void {
  const parsed = ManifestSchema.safeParse(json);
  if (!parsed.success) throw new RegistryError(registry, where, 'not a valid image manifest (config and layers required)');
  const m = parsed.data;
  assertBlobDescriptor(m.config, registry);
  if (!graph.layers.has(m.config.digest)) graph.configs.set(m.config.digest, m.config);
  for (const l of m.layers) {
    assertBlobDescriptor(l, registry);
    graph.configs.delete(l.digest);
    graph.layers.set(l.digest, l);
  }
}

/** Every item through `fn`, biggest blobs first; the first failure stops the rest (see mapUntilFailure). */
async function runAll(items: readonly Descriptor[], concurrency: number, parent: AbortSignal | undefined, fn: (item: Descriptor, signal: AbortSignal) => Promise<void>): Promise<void> {
  if (!items.length) return;
  await mapUntilFailure(items, Math.max(1, concurrency), fn, { size: (d) => d.size, signal: parent });
}

// ---------------------------------------------------------------------------------------------------------------
// push

async function localGraph(store: LocalStore, root: Descriptor): Promise<Graph> {
  const graph: Graph = { manifests: [], layers: new Map(), configs: new Map() };
  const seen = new Set<string>();
  const visit = async (d: Descriptor, depth: number): Promise<void> => {
    if (seen.has(d.digest)) return;
    seen.add(d.digest);
    if (depth > MAX_DEPTH) throw new ModctlError('E_STORE_CORRUPT', `index nesting deeper than ${MAX_DEPTH} at ${d.digest}`);
    const bytes = await store.readBlob(d.digest);
    const json = JSON.parse(bytes.toString('utf8'));
    const mediaType: string = json.mediaType ?? d.mediaType;
    if (Array.isArray(json.manifests)) {
      const idx = IndexSchema.safeParse(json);
      if (!idx.success) throw new ModctlError('E_STORE_CORRUPT', `${d.digest} is not a valid OCI index`);
      for (const child of idx.data.manifests) {
        if (isManifestType(child.mediaType)) await visit(child, depth + 1);
        else if (!graph.layers.has(child.digest)) graph.layers.set(child.digest, child);
      }
    } else {
      addBlobs(graph, json, `read manifest ${shortDigest(d.digest)}`);
    }
    graph.manifests.push({ descriptor: { ...d, mediaType, annotations: undefined }, bytes, json });
  };
  await visit(root, 0);
  return graph;
}

/**
 * Push `source` (a local name accepted by `store.resolve`) to `target`. Returns what was transferred.
 */
export async function pushArtifact(store: LocalStore, source: string, target: Reference, opts: TransferOptions = {}): Promise<PushResult> {
  const concurrency = opts.concurrency ?? DEFAULT_CONCURRENCY;
  const tagged = await store.resolve(source);
  const graph = await localGraph(store, tagged.descriptor);
  const root = graph.manifests[graph.manifests.length - 1];
  if (target.digest && target.digest !== root.descriptor.digest) {
    throw new UsageError(`${source} has digest ${root.descriptor.digest}, not ${target.digest} as the target reference says`);
  }
  const repo = target.repository;
  const sessions = await UploadSessions.load(path.join(store.ingestDir, 'uploads.json'));
  const client = new RegistryClient(target.registry, { ...opts, concurrency });
  // Ask for everything up front: one token covers the uploads, the manifest PUTs and the mount sources.
  client.addScopeHints(client.pushScope(repo), ...(opts.mountFrom ?? []).filter((r) => r && r !== repo).map((r) => client.pullScope(r)));
  const progress = opts.onProgress;
  const result: PushResult = {
    reference: formatReference(target),
    digest: root.descriptor.digest,
    size: root.descriptor.size,
    blobsPushed: 0,
    blobsSkipped: 0,
    blobsMounted: 0,
    bytesUploaded: 0,
  };
  const pushBlob = async (d: Descriptor, signal: AbortSignal) => {
    const local = await store.statBlob(d.digest);
    if (!local || local.size !== d.size) {
      throw new NotFoundError(`blob ${d.digest} is missing from the local store (or has the wrong size)`, {
        hint: 'the local artifact is incomplete; rebuild or pull it again',
      });
    }
    progress?.({ type: 'start', id: d.digest, label: label(d), total: d.size });
    const present = await client.headBlob(repo, d.digest);
    if (present && (present.size === d.size || present.size < 0)) {
      result.blobsSkipped++;
      progress?.({ type: 'done', id: d.digest, skipped: true });
      return;
    }
    const r = await client.uploadBlob(repo, d, (offset) => store.openBlob(d.digest, { start: offset, highWaterMark: UPLOAD_HWM }), {
      chunkSize: opts.chunkSize,
      mountFrom: opts.mountFrom,
      onProgress: progress,
      signal,
      sessions,
      file: store.blobPath(d.digest),
    });
    if (r.mounted) result.blobsMounted++;
    else result.blobsPushed++;
    result.bytesUploaded += r.bytesUploaded;
    progress?.({ type: 'done', id: d.digest, skipped: r.mounted });
  };
  try {
    await runAll([...graph.layers.values()], concurrency, opts.signal, pushBlob);
    await runAll([...graph.configs.values()], concurrency, opts.signal, pushBlob);
    for (const m of graph.manifests) {
      const mediaType = typeof m.json.mediaType === 'string' ? m.json.mediaType : m.descriptor.mediaType;
      await client.putManifest(repo, m.descriptor.digest, m.bytes, mediaType);
    }
    if (target.tag) {
      // Always PUT the tag, also when it already pointed elsewhere (or here: cheap and idempotent).
      const mediaType = typeof root.json.mediaType === 'string' ? root.json.mediaType : root.descriptor.mediaType;
      await client.putManifest(repo, target.tag, root.bytes, mediaType);
    }
    return result;
  } catch (e) {
    if (opts.signal?.aborted) {
      await client.cancelOpenUploads();
      throw new AbortedError();
    }
    throw e;
  } finally {
    await sessions.flush();
    await client.close();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// pull

async function remoteGraph(client: RegistryClient, repo: string, root: FetchedManifest): Promise<Graph> {
  const graph: Graph = { manifests: [], layers: new Map(), configs: new Map() };
  const seen = new Set<string>();
  const visit = async (m: FetchedManifest, depth: number): Promise<void> => {
    if (seen.has(m.descriptor.digest)) return;
    seen.add(m.descriptor.digest);
    if (depth > MAX_DEPTH) throw new RegistryError(client.registry, 'pull', `index nesting deeper than ${MAX_DEPTH}`);
    if (Array.isArray(m.json.manifests)) {
      const idx = IndexSchema.safeParse(m.json);
      if (!idx.success) throw new RegistryError(client.registry, `pull ${shortDigest(m.descriptor.digest)}`, 'not a valid image index');
      for (const child of idx.data.manifests) {
        assertBlobDescriptor(child, client.registry);
        if (!isManifestType(child.mediaType)) {
          if (!graph.layers.has(child.digest)) graph.layers.set(child.digest, child);
          continue;
        }
        if (seen.has(child.digest)) continue;
        const fetched = await client.getManifest(repo, child.digest);
        if (fetched.descriptor.size !== child.size) {
          throw new RegistryError(client.registry, `pull manifest ${shortDigest(child.digest)}`, `size ${fetched.descriptor.size} differs from the index's ${child.size}`);
        }
        await visit(fetched, depth + 1);
      }
    } else {
      addBlobs(graph, m.json, `pull manifest ${shortDigest(m.descriptor.digest)}`, client.registry);
    }
    graph.manifests.push(m);
  };
  await visit(root, 0);
  return graph;
}

/** Pull `ref` (tag or digest) into the store and tag it `tagAs` (default: the full reference). */
export async function pullArtifact(store: LocalStore, ref: Reference, opts: TransferOptions & { tagAs?: string } = {}): Promise<PullResult> {
  const concurrency = opts.concurrency ?? DEFAULT_CONCURRENCY;
  const repo = ref.repository;
  const client = new RegistryClient(ref.registry, { ...opts, concurrency });
  const progress = opts.onProgress;
  try {
    const root = await client.getManifest(repo, ref.digest ?? ref.tag ?? 'latest');
    const graph = await remoteGraph(client, repo, root);
    const result: PullResult = {
      reference: formatReference(ref),
      digest: root.descriptor.digest,
      size: root.descriptor.size,
      blobsFetched: 0,
      blobsSkipped: 0,
      bytesDownloaded: 0,
      mediaType: root.descriptor.mediaType,
    };
    const blobs = [...graph.layers.values(), ...graph.configs.values()];
    await runAll(blobs, concurrency, opts.signal, async (d, signal) => {
      progress?.({ type: 'start', id: d.digest, label: label(d), total: d.size });
      if (await store.hasBlob(d.digest, d.size)) {
        result.blobsSkipped++;
        progress?.({ type: 'done', id: d.digest, skipped: true });
        return;
      }
      const r = await downloadBlob(client, store, repo, d, { signal, onProgress: progress });
      result.blobsFetched++;
      result.bytesDownloaded += r.bytesDownloaded;
      progress?.({ type: 'done', id: d.digest });
    });
    // Manifests only after every blob they name is in place, children before parents.
    for (const m of graph.manifests) await store.putBytes(m.bytes, m.descriptor.digest);
    await store.tag(opts.tagAs ?? formatReference(ref), root.descriptor);
    return result;
  } catch (e) {
    if (opts.signal?.aborted) throw new AbortedError();
    throw e;
  } finally {
    await client.close();
  }
}

