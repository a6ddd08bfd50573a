import type { CommandDefinition } from '../define.js';
import type { CliContext } from '../context.js';
import { humanBytes, table } from '../output.js';
import { loadArtifact } from '../../content/artifact.js';
import { parseLayerMediaType } from '../../oci/media-types.js';
import type { Descriptor, Manifest, Index } from '../../oci/types.js';
import { ModctlError } from '../../errors.js';
import { addRemoteFlags, remoteOptions } from '../remote-flags.js';
import { fetchBlobBytes, fetchManifest } from '../../remote/index.js';
import { formatReference, parseReference } from '../../oci/reference.js';
import { parseManifestJson, isIndex } from '../../content/artifact.js';
import { normalizeArtifact, parseConfig } from '../../formats/normalize.js';
import { ANN_VARIANT_PREFIX, describeVariant, selectVariant, variantEntries } from '../../formats/variants.js';
import { addVariantFlag, variantSelectors } from './extract.js';

/**
 * modctl's inspect JSON (Id, Digest, Architecture, CreatedAt, Family, Format, Name, ParamSize, Precision,
 * Quantization, Layers[{MediaType, Digest, Size, Filepath}]) filled the same way for every dialect, plus
 * `ArtifactFormat` (the dialect: modelpack, modelpack-legacy, docker, kitops, oras, ollama, unknown). `Format` keeps
 * modctl's meaning: the weights' file format (gguf, safetensors, …).
 */
export interface InspectSummary {
  Reference: string;
  Id: string;
  Digest: string;
  MediaType?: string;
  ArtifactType?: string;
  ArtifactFormat: string;
  /** Set when Reference names an image index and one variant was chosen. */
  Variant?: string;
  Name?: string;
  Family?: string;
  Architecture?: string;
  Format?: string;
  ParamSize?: string;
  Precision?: string;
  Quantization?: string;
  ContextLength?: number;
  CreatedAt?: string;
  Size: number;
  Layers: Array<{ MediaType: string; Digest: string; Size: number; Filepath?: string; Role?: string }>;
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

export function summarize(reference: string, digest: string, manifestSize: number, m: Manifest, config: any): InspectSummary {
  const n = normalizeArtifact(m, config);
  const s = n.summary;
  const createdAt = str(config?.descriptor?.createdAt) ?? str(config?.descriptor?.created) ?? str(config?.created) ?? str(m.annotations?.['org.opencontainers.image.created']);
  return {
    Reference: reference,
    Id: m.config.digest,
    Digest: digest,
    MediaType: m.mediaType,
    ArtifactType: m.artifactType,
    ArtifactFormat: n.format,
    Name: s.name,
    Family: s.family,
    Architecture: s.architecture,
    Format: s.modelFormat,
    ParamSize: s.paramSize,
    Precision: s.precision,
    Quantization: s.quantization,
    ContextLength: s.contextLength,
    CreatedAt: createdAt,
    Size: manifestSize + m.config.size + m.layers.reduce((a, l) => a + l.size, 0),
    Layers: n.layers.map((l) => ({ MediaType: l.layer.mediaType, Digest: l.layer.digest, Size: l.layer.size, Filepath: l.name, Role: l.role })),
  };
}

export function summaryText(s: InspectSummary): string {
  const fields: Array<[string, string | undefined]> = [
    ['Reference', s.Reference],
    ['Variant', s.Variant],
    ['Digest', s.Digest],
    ['Config', s.Id],
    ['Format', s.ArtifactFormat],
    ['Artifact type', s.ArtifactType],
    ['Name', s.Name],
    ['Family', s.Family],
    ['Architecture', s.Architecture],
    ['Model format', s.Format],
    ['Param size', s.ParamSize],
    ['Precision', s.Precision],
    ['Quantization', s.Quantization],
    ['Context length', s.ContextLength === undefined ? undefined : String(s.ContextLength)],
    ['Created', s.CreatedAt],
    ['Size', humanBytes(s.Size)],
  ];
  const head = fields.filter(([, v]) => v).map(([k, v]) => `${(k + ':').padEnd(16)}${v}`).join('\n');
  const rows = s.Layers.map((l) => {
    const p = parseLayerMediaType(l.MediaType);
    return [p ? `${p.kind}/${p.encoding}` : (l.Role ?? l.MediaType), humanBytes(l.Size), l.Digest.slice(0, 19), l.Filepath ?? '-'];
  });
  return `${head}\n\n${table(['KIND', 'SIZE', 'DIGEST', 'PATH'], rows)}`;
}

interface VariantRow {
  Digest: string;
  Size: number;
  MediaType: string;
  ArtifactType?: string;
  /** `org.cncf.model.variant.*` annotations by short key (quantization, format, paramSize, precision, …). */
  Variant: Record<string, string>;
  Annotations?: Record<string, string>;
}

function variantRows(idx: Index): VariantRow[] {
  return variantEntries(idx).map((d: Descriptor) => {
    const variant: Record<string, string> = {};
    for (const [k, v] of Object.entries(d.annotations ?? {})) if (k.startsWith(ANN_VARIANT_PREFIX)) variant[k.slice(ANN_VARIANT_PREFIX.length)] = v;
    const row: VariantRow = { Digest: d.digest, Size: d.size, MediaType: d.mediaType, Variant: variant };
    if (d.artifactType) row.ArtifactType = d.artifactType;
    if (d.annotations) row.Annotations = d.annotations;
    return row;
  });
}

export function indexJson(reference: string, digest: string, idx: Index): Record<string, unknown> {
  return { Reference: reference, Digest: digest, MediaType: idx.mediaType, ArtifactType: idx.artifactType, Variants: variantRows(idx), Index: idx };
}

export function indexText(reference: string, digest: string, idx: Index): string {
  const entries = variantEntries(idx);
  const rows = entries.map((m) => [m.digest.slice(0, 19), humanBytes(m.size), describeVariant(m)]);
  const head = [
    `Reference:      ${reference}`,
    `Digest:         ${digest}`,
    `Type:           image index (${entries.length} variant${entries.length === 1 ? '' : 's'})`,
    ...(idx.artifactType ? [`Artifact type:  ${idx.artifactType}`] : []),
  ].join('\n');
  return `${head}\n\n${table(['DIGEST', 'SIZE', 'VARIANT'], rows)}\n\nPick a variant with --variant key=value (pull, fetch, extract, inspect).`;
}

export const inspectCommand: CommandDefinition = {
  name: 'inspect',
  summary: 'show an artifact of any format (ModelPack, Docker, KitOps, ORAS, Ollama) or the variants of an index',
  configure(cmd) {
    addRemoteFlags(
      cmd
        .argument('<ref>', 'reference in the local store (or name@sha256:… / sha256:…)')
        .option('--config', 'print the raw config blob')
        .option('--manifest', 'print the raw manifest')
        .option('--remote', 'read the manifest and config from the registry (no layers are downloaded)'),
    );
    addVariantFlag(cmd);
  },
  async run(args, opts, ctx) {
    if (opts.config && opts.manifest) throw new ModctlError('E_USAGE', '--config and --manifest cannot be combined', { exitCode: 2 });
    if (opts.remote) return inspectRemote(args[0], opts, ctx);
    const selectors = variantSelectors(opts);
    const store = await ctx.store();
    const a = await loadArtifact(store, args[0]);
    let manifestBytes = a.manifestBytes;
    let m = a.manifest;
    let variant: Descriptor | undefined;
    if (a.index) {
      if (!selectors.length) {
        if (opts.manifest) return { raw: withNewline(a.manifestBytes) };
        if (opts.config) throw new ModctlError('E_IS_INDEX', `${args[0]} is an image index; it has no config`, { hint: 'pick a variant with --variant key=value' });
        return { json: indexJson(a.tagged.name, a.tagged.descriptor.digest, a.index), text: indexText(a.tagged.name, a.tagged.descriptor.digest, a.index) };
      }
      variant = selectVariant(a.index, selectors, a.tagged.name);
      manifestBytes = await store.readBlob(variant.digest);
      const parsed = parseManifestJson(manifestBytes, `manifest ${variant.digest}`);
      if (isIndex(parsed)) throw new ModctlError('E_MANIFEST_INVALID', `nested image indexes are not supported (${variant.digest})`);
      m = parsed;
    } else if (selectors.length) {
      throw new ModctlError('E_NOT_INDEX', `${args[0]} is a single model, not an image index of variants; --variant does not apply`, { exitCode: 2 });
    }
    if (opts.manifest) return { raw: withNewline(manifestBytes) };
    const configBytes = await store.readBlob(m!.config.digest);
    if (opts.config) return { raw: Buffer.concat([configBytes, Buffer.from('\n')]) };
    const s = summarize(a.tagged.name, a.tagged.descriptor.digest, manifestBytes.length, m!, parseConfig(configBytes));
    if (variant) s.Variant = `${variant.digest} (${describeVariant(variant)})`;
    return { json: s, text: summaryText(s) };
  },
};

function withNewline(b: Buffer): Buffer {
  return b.toString('utf8').endsWith('\n') ? b : Buffer.concat([b, Buffer.from('\n')]);
}

async function inspectRemote(input: string, opts: Record<string, any>, ctx: CliContext) {
  const ref = parseReference(input);
  const ro = remoteOptions(opts, ctx);
  const selectors = variantSelectors(opts);
  const top = await fetchManifest(ref, ro);
  const name = formatReference(ref);
  const parsed = parseManifestJson(top.bytes, `manifest of ${name}`);
  let m: Manifest;
  let bytes = top.bytes;
  let variant: Descriptor | undefined;
  if (isIndex(parsed)) {
    if (!selectors.length) {
      if (opts.manifest) return { raw: withNewline(top.bytes) };
      if (opts.config) throw new ModctlError('E_IS_INDEX', `${input} is an image index; it has no config`, { hint: 'pick a variant with --variant key=value' });
      return { json: indexJson(name, top.descriptor.digest, parsed), text: indexText(name, top.descriptor.digest, parsed) };
    }
    variant = selectVariant(parsed, selectors, name);
    const child = await fetchManifest({ ...ref, digest: variant.digest }, ro);
    bytes = child.bytes;
    const inner = parseManifestJson(child.bytes, `manifest ${variant.digest}`);
    if (isIndex(inner)) throw new ModctlError('E_MANIFEST_INVALID', `nested image indexes are not supported (${variant.digest})`);
    m = inner;
  } else {
    if (selectors.length) throw new ModctlError('E_NOT_INDEX', `${input} is a single model, not an image index of variants; --variant does not apply`, { exitCode: 2 });
    m = parsed;
  }
  if (opts.manifest) return { raw: withNewline(bytes) };
  const configBytes = await fetchBlobBytes(ref, m.config, ro);
  if (opts.config) return { raw: Buffer.concat([configBytes, Buffer.from('\n')]) };
  const s = summarize(name, top.descriptor.digest, bytes.length, m, parseConfig(configBytes));
  if (variant) s.Variant = `${variant.digest} (${describeVariant(variant)})`;
  return { json: s, text: summaryText(s) };
}
