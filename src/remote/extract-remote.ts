/**
 * Remote-first extraction: layers stream from the registry straight into the output directory, with nothing stored
 * locally (pull --extract-from-remote) or only the layers whose file path matches (fetch). Each raw file is hashed
 * while written under a stable partial name and renamed only after its digest checks out; an interrupted run resumes
 * from the bytes on disk. Every dialect (ModelPack, Docker, KitOps, ORAS, Ollama) goes through the one normalisation
 * step of src/formats/normalize.ts; path safety is the extractor's (src/extract).
 */
import picomatch from 'picomatch';
import { DigestMismatchError, ModctlError, RegistryError, SizeMismatchError } from '../errors.js';
import { extractLayers, type ExtractResult } from '../extract/extract.js';
import { parseManifestJson, isIndex } from '../content/artifact.js';
import { digestAlgorithm, digestOf } from '../oci/digest.js';
import { formatReference, type Reference } from '../oci/reference.js';
import { MAX_MANIFEST_BYTES, type Descriptor, type Index, type Manifest } from '../oci/types.js';
import { extractionInput, needsConfig, normalizeArtifact, parseConfig, type NormalizedArtifact, type NormalizedLayer } from '../formats/normalize.js';
import { selectVariant, type VariantSelector } from '../formats/variants.js';
import type { ProgressFn } from '../util/progress.js';
import { RegistryClient, type RemoteOptions } from './repository.js';
import { openRemoteBlob } from './blob-source.js';
import { fetchBlobResumable, usesFetchWorkers } from './fetch-blob.js';
import { discard, readCapped } from './http.js';
import { shortDigest } from './errors.js';

export interface RemoteExtractOptions extends RemoteOptions {
  outputDir: string;
  force?: boolean;
  concurrency?: number;
  onProgress?: ProgressFn;
  /** fetch: only layers whose (normalised) file path matches one of these globs (`**` supported). */
  patterns?: string[];
  /** `--variant key=value` selectors for an image index (see src/formats/variants.ts). */
  variant?: VariantSelector[];
  /** Choose a manifest out of an index; overrides `variant`. Default: selectVariant with `variant`. */
  selectManifest?: (index: any, client: RegistryClient, ref: Reference) => Promise<Descriptor>;
}

export interface RemoteExtractResult extends ExtractResult {
  reference: string;
  digest: string;
  /** Digest of the variant manifest when `reference` is an image index. */
  variantDigest?: string;
  /** The artifact's dialect. */
  format: string;
  /** Layers chosen (all, or those matching the patterns), by normalised name. */
  selected: string[];
  /** Layers left out because they carry no file name. */
  skipped?: string[];
}

export interface ResolvedRemote {
  manifest: Manifest;
  /** Digest of what `ref` names (the index when it is one). */
  digest: string;
  /** The chosen entry, when `ref` names an index. */
  variant?: Descriptor;
  index?: Index;
}

export async function resolveRemoteManifest(
  client: RegistryClient,
  ref: Reference,
  select?: RemoteExtractOptions['selectManifest'],
  variant: VariantSelector[] = [],
): Promise<ResolvedRemote> {
  const top = await client.getManifest(ref.repository, ref.digest ?? ref.tag ?? 'latest');
  const parsed = parseManifestJson(top.bytes, `manifest of ${formatReference(ref)}`);
  if (!isIndex(parsed)) {
    if (variant.length) {
      throw new ModctlError('E_NOT_INDEX', `${formatReference(ref)} is a single model, not an image index of variants; --variant does not apply`, {
        hint: 'drop --variant',
        exitCode: 2,
      });
    }
    return { manifest: parsed, digest: top.descriptor.digest };
  }
  const child = select ? await select(parsed, client, ref) : selectVariant(parsed, variant, formatReference(ref));
  const m = await client.getManifest(ref.repository, child.digest);
  const inner = parseManifestJson(m.bytes, `manifest ${child.digest}`);
  if (isIndex(inner)) throw new ModctlError('E_MANIFEST_INVALID', `nested image indexes are not supported (${child.digest})`);
  return { manifest: inner, digest: top.descriptor.digest, variant: child, index: parsed };
}

/** Read a (small) config blob with this client: capped, size and digest verified; inline `data` is used when given. */
export async function fetchConfigBytes(client: RegistryClient, repo: string, desc: Descriptor): Promise<Buffer> {
  if (desc.size > MAX_MANIFEST_BYTES) {
    throw new ModctlError('E_TOO_LARGE', `config ${desc.digest} is ${desc.size} bytes, over the ${MAX_MANIFEST_BYTES}-byte limit for in-memory reads`);
  }
  const verify = (bytes: Buffer): Buffer => {
    if (bytes.length !== desc.size) throw new SizeMismatchError(desc.size, bytes.length, `config ${desc.digest}`);
    const actual = digestOf(bytes, digestAlgorithm(desc.digest));
    if (actual !== desc.digest) throw new DigestMismatchError(desc.digest, actual, 'config');
    return bytes;
  };
  const inline = (desc as { data?: unknown }).data;
  if (typeof inline === 'string') {
    try {
      return verify(Buffer.from(inline, 'base64'));
    } catch {
      // fall through to the registry's copy
    }
  }
  const res = await client.getBlob(repo, desc.digest);
  if (res.status !== 200) {
    await discard(res);
    throw new RegistryError(client.registry, `pull config ${shortDigest(desc.digest)}`, `unexpected status ${res.status}`);
  }
  const { bytes, truncated } = await readCapped(res.body, desc.size);
  if (truncated) throw new SizeMismatchError(desc.size, desc.size + 1, `config ${desc.digest}`);
  return verify(bytes);
}

/**
 * Resolve `ref` (choosing a variant of an index) and normalise its layers. The config is fetched only when the
 * dialect keeps paths in it (KitOps), or always with `withConfig`.
 */
export async function resolveRemoteArtifact(
  client: RegistryClient,
  ref: Reference,
  opts: { variant?: VariantSelector[]; selectManifest?: RemoteExtractOptions['selectManifest']; withConfig?: boolean } = {},
): Promise<ResolvedRemote & { normalized: NormalizedArtifact; config?: unknown }> {
  const resolved = await resolveRemoteManifest(client, ref, opts.selectManifest, opts.variant ?? []);
  const config = opts.withConfig || needsConfig(resolved.manifest) ? parseConfig(await fetchConfigBytes(client, ref.repository, resolved.manifest.config)) : undefined;
  return { ...resolved, config, normalized: normalizeArtifact(resolved.manifest, config) };
}

export function patternFilter(patterns: string[]): (path: string | undefined) => boolean {
  const matchers = patterns.map((p) => picomatch(p.replace(/^\.\//, ''), { dot: true }));
  return (p) => p !== undefined && matchers.some((m) => m(p));
}

/** The layers of `normalized` whose names match `patterns`; none is an error listing the names. */
export function matchLayers(normalized: NormalizedArtifact, patterns: string[]): NormalizedLayer[] {
  const match = patternFilter(patterns);
  const hits = normalized.layers.filter((l) => !l.skip && match(l.name));
  if (hits.length === 0) {
    const paths = normalized.layers.map((l) => l.name ?? `(unnamed ${l.layer.mediaType})`);
    throw new ModctlError('E_NO_MATCH', `no layers matched ${patterns.map((p) => JSON.stringify(p)).join(', ')}`, {
      hint: `the artifact has: ${paths.slice(0, 50).join(', ')}${paths.length > 50 ? `, … (${paths.length} in all)` : ''}`,
    });
  }
  return hits;
}

export async function extractRemote(ref: Reference, opts: RemoteExtractOptions): Promise<RemoteExtractResult> {
  const client = new RegistryClient(ref.registry, { ...opts, concurrency: opts.concurrency });
  try {
    // A whole model almost always has weights big enough for the fetch workers: start them now, so their start-up
    // overlaps the manifest. A `fetch` by pattern often wants a config file only; its workers start when needed.
    const wholeArtifact = !opts.patterns?.length;
    if (wholeArtifact) client.warmFetchWorkers();
    const { normalized, digest, variant } = await resolveRemoteArtifact(client, ref, { variant: opts.variant, selectManifest: opts.selectManifest });
    const chosen = wholeArtifact ? normalized.layers : matchLayers(normalized, opts.patterns!);
    const input = extractionInput(chosen);
    for (const s of input.skipped) opts.onWarning?.(`${s.skip}; skipped`);
    const progress = opts.onProgress ?? (() => {});
    const seen = new Map<string, number>();
    const advance = (layer: Descriptor, bytes: number) => {
      progress({ type: 'advance', id: layer.digest, bytes });
      const n = (seen.get(layer.digest) ?? 0) + bytes;
      seen.set(layer.digest, n);
      if (n >= layer.size) progress({ type: 'done', id: layer.digest });
    };
    const result = await extractLayers(input.layers, {
      outputDir: opts.outputDir,
      force: opts.force,
      concurrency: opts.concurrency,
      signal: opts.signal,
      onWarning: opts.onWarning,
      resumable: true,
      target: input.target,
      onProgress: (ev) => advance(ev.layer, ev.bytes),
      fetchToFile: async (layer, file, onPos) => {
        if (!usesFetchWorkers(client, layer)) return undefined;
        progress({ type: 'start', id: layer.digest, label: input.label(layer), total: layer.size });
        return fetchBlobResumable(client, ref.repository, layer, { file, mode: 0o600, signal: opts.signal, onProgress: onPos, onRetry: opts.onWarning, what: 'layer' });
      },
      openBlob: async (layer, offset = 0) => {
        progress({ type: 'start', id: layer.digest, label: input.label(layer), total: layer.size });
        return openRemoteBlob(client, ref.repository, layer, offset, { signal: opts.signal, onRetry: opts.onWarning });
      },
    });
    const out: RemoteExtractResult = {
      ...result,
      reference: formatReference(ref),
      digest,
      format: normalized.format,
      selected: input.layers.map((l) => input.label(l)),
    };
    if (variant) out.variantDigest = variant.digest;
    if (input.skipped.length) out.skipped = input.skipped.map((s) => s.layer.digest);
    return out;
  } finally {
    await client.close();
  }
}
