/**
 * Remote-first extraction: layers stream from the registry straight into the output directory, with nothing stored
 * locally (pull --extract-from-remote) or only the layers whose file path matches (fetch). Each raw file is hashed
 * while written under a stable partial name and renamed only after its digest checks out; an interrupted run resumes
 * from the bytes on disk. Path safety is the extractor's (src/extract).
 */
import picomatch from 'picomatch';
import { ModctlError } from '../errors.js';
import { extractLayers, type ExtractResult } from '../extract/extract.js';
import { parseManifestJson, isIndex } from '../content/artifact.js';
import { layerFilepath } from '../oci/media-types.js';
import { formatReference, type Reference } from '../oci/reference.js';
import type { Descriptor, Manifest } from '../oci/types.js';
import type { ProgressFn } from '../util/progress.js';
import { RegistryClient, type RemoteOptions } from './repository.js';
import { openRemoteBlob } from './blob-source.js';

export interface RemoteExtractOptions extends RemoteOptions {
  outputDir: string;
  force?: boolean;
  concurrency?: number;
  onProgress?: ProgressFn;
  /** fetch: only layers whose file path matches one of these globs (`**` supported). */
  patterns?: string[];
  /** Choose a manifest out of an index (see selectVariant); default: refuse an index with several entries. */
  selectManifest?: (index: any, client: RegistryClient, ref: Reference) => Promise<Descriptor>;
}

export interface RemoteExtractResult extends ExtractResult {
  reference: string;
  digest: string;
  /** Layers chosen (all, or those matching the patterns). */
  selected: string[];
}

export async function resolveRemoteManifest(
  client: RegistryClient,
  ref: Reference,
  select?: RemoteExtractOptions['selectManifest'],
): Promise<{ manifest: Manifest; digest: string }> {
  const top = await client.getManifest(ref.repository, ref.digest ?? ref.tag ?? 'latest');
  const parsed = parseManifestJson(top.bytes, `manifest of ${formatReference(ref)}`);
  if (!isIndex(parsed)) return { manifest: parsed, digest: top.descriptor.digest };
  let child: Descriptor;
  if (select) child = await select(parsed, client, ref);
  else if (parsed.manifests.length === 1) child = parsed.manifests[0];
  else {
    throw new ModctlError('E_IS_INDEX', `${formatReference(ref)} is an image index with ${parsed.manifests.length} variants`, {
      hint: 'pick one with --variant key=value (see `modctl inspect --remote`)',
    });
  }
  const m = await client.getManifest(ref.repository, child.digest);
  const inner = parseManifestJson(m.bytes, `manifest ${child.digest}`);
  if (isIndex(inner)) throw new ModctlError('E_MANIFEST_INVALID', `nested image indexes are not supported (${child.digest})`);
  return { manifest: inner, digest: top.descriptor.digest };
}

export function patternFilter(patterns: string[]): (path: string | undefined) => boolean {
  const matchers = patterns.map((p) => picomatch(p.replace(/^\.\//, ''), { dot: true }));
  return (p) => p !== undefined && matchers.some((m) => m(p));
}

export async function extractRemote(ref: Reference, opts: RemoteExtractOptions): Promise<RemoteExtractResult> {
  const client = new RegistryClient(ref.registry, { ...opts, concurrency: opts.concurrency });
  try {
    const { manifest, digest } = await resolveRemoteManifest(client, ref, opts.selectManifest);
    let layers = manifest.layers;
    if (opts.patterns?.length) {
      const match = patternFilter(opts.patterns);
      layers = layers.filter((l) => match(layerFilepath(l.annotations)));
      if (layers.length === 0) {
        const paths = manifest.layers.map((l) => layerFilepath(l.annotations) ?? `(unnamed ${l.mediaType})`);
        throw new ModctlError('E_NO_MATCH', `no layers matched ${opts.patterns.map((p) => JSON.stringify(p)).join(', ')}`, {
          hint: `the artifact has: ${paths.slice(0, 50).join(', ')}${paths.length > 50 ? `, … (${paths.length} in all)` : ''}`,
        });
      }
    }
    const progress = opts.onProgress ?? (() => {});
    const seen = new Map<string, number>();
    const advance = (layer: Descriptor, bytes: number) => {
      progress({ type: 'advance', id: layer.digest, bytes });
      const n = (seen.get(layer.digest) ?? 0) + bytes;
      seen.set(layer.digest, n);
      if (n >= layer.size) progress({ type: 'done', id: layer.digest });
    };
    const result = await extractLayers(layers, {
      outputDir: opts.outputDir,
      force: opts.force,
      concurrency: opts.concurrency,
      signal: opts.signal,
      onWarning: opts.onWarning,
      resumable: true,
      onProgress: (ev) => advance(ev.layer, ev.bytes),
      openBlob: async (layer, offset = 0) => {
        progress({ type: 'start', id: layer.digest, label: layerFilepath(layer.annotations) ?? layer.digest.slice(0, 19), total: layer.size });
        return openRemoteBlob(client, ref.repository, layer, offset, { signal: opts.signal, onRetry: opts.onWarning });
      },
    });
    return { ...result, reference: formatReference(ref), digest, selected: layers.map((l) => layerFilepath(l.annotations) ?? l.digest) };
  } finally {
    await client.close();
  }
}
