import type { CommandDefinition } from '../define.js';
import { humanBytes, table } from '../output.js';
import { loadArtifact } from '../../content/artifact.js';
import { layerFilepath, parseLayerMediaType } from '../../oci/media-types.js';
import type { Manifest, Index } from '../../oci/types.js';
import { ModctlError } from '../../errors.js';
import { addRemoteFlags, remoteOptions } from '../remote-flags.js';
import { fetchBlobBytes, fetchManifest } from '../../remote/index.js';
import { formatReference, parseReference } from '../../oci/reference.js';
import { parseManifestJson, isIndex } from '../../content/artifact.js';

export interface InspectSummary {
  Reference: string;
  Id: string;
  Digest: string;
  MediaType?: string;
  ArtifactType?: string;
  Name?: string;
  Family?: string;
  Architecture?: string;
  Format?: string;
  ParamSize?: string;
  Precision?: string;
  Quantization?: string;
  CreatedAt?: string;
  Size: number;
  Layers: Array<{ MediaType: string; Digest: string; Size: number; Filepath?: string }>;
}

export function summarize(reference: string, digest: string, manifestSize: number, m: Manifest, config: any): InspectSummary {
  const d = config?.descriptor ?? {};
  const c = config?.config ?? {};
  return {
    Reference: reference,
    Id: m.config.digest,
    Digest: digest,
    MediaType: m.mediaType,
    ArtifactType: m.artifactType,
    Name: d.name,
    Family: d.family,
    Architecture: c.architecture,
    Format: c.format,
    ParamSize: c.paramSize,
    Precision: c.precision,
    Quantization: c.quantization,
    CreatedAt: d.createdAt,
    Size: manifestSize + m.config.size + m.layers.reduce((a, l) => a + l.size, 0),
    Layers: m.layers.map((l) => ({ MediaType: l.mediaType, Digest: l.digest, Size: l.size, Filepath: layerFilepath(l.annotations) })),
  };
}

export function summaryText(s: InspectSummary): string {
  const fields: Array<[string, string | undefined]> = [
    ['Reference', s.Reference],
    ['Digest', s.Digest],
    ['Config', s.Id],
    ['Artifact type', s.ArtifactType],
    ['Name', s.Name],
    ['Family', s.Family],
    ['Architecture', s.Architecture],
    ['Format', s.Format],
    ['Param size', s.ParamSize],
    ['Precision', s.Precision],
    ['Quantization', s.Quantization],
    ['Created', s.CreatedAt],
    ['Size', humanBytes(s.Size)],
  ];
  const head = fields.filter(([, v]) => v).map(([k, v]) => `${(k + ':').padEnd(15)}${v}`).join('\n');
  const rows = s.Layers.map((l) => {
    const p = parseLayerMediaType(l.MediaType);
    return [p ? `${p.kind}/${p.encoding}` : l.MediaType, humanBytes(l.Size), l.Digest.slice(0, 19), l.Filepath ?? '-'];
  });
  return `${head}\n\n${table(['KIND', 'SIZE', 'DIGEST', 'PATH'], rows)}`;
}

export function indexText(reference: string, digest: string, idx: Index): string {
  const rows = idx.manifests.map((m) => [m.digest.slice(0, 19), humanBytes(m.size), Object.entries(m.annotations ?? {}).filter(([k]) => !k.startsWith('org.opencontainers.image.ref')).map(([k, v]) => `${k.replace(/^org\.cncf\.model\.variant\./, '')}=${v}`).join(' ')]);
  return `Reference:     ${reference}\nDigest:        ${digest}\nType:          image index (${idx.manifests.length} variants)\n\n${table(['DIGEST', 'SIZE', 'VARIANT'], rows)}`;
}

export const inspectCommand: CommandDefinition = {
  name: 'inspect',
  summary: 'show an artifact: summary, raw config (--config) or raw manifest (--manifest)',
  configure(cmd) {
    addRemoteFlags(
      cmd
        .argument('<ref>', 'reference in the local store (or name@sha256:… / sha256:…)')
        .option('--config', 'print the raw config blob')
        .option('--manifest', 'print the raw manifest')
        .option('--remote', 'read the manifest and config from the registry (no layers are downloaded)'),
    );
  },
  async run(args, opts, ctx) {
    if (opts.config && opts.manifest) throw new ModctlError('E_USAGE', '--config and --manifest cannot be combined', { exitCode: 2 });
    if (opts.remote) return inspectRemote(args[0], opts, ctx);
    const store = await ctx.store();
    const a = await loadArtifact(store, args[0]);
    if (opts.manifest) return { raw: a.manifestBytes.toString('utf8').endsWith('\n') ? a.manifestBytes : Buffer.concat([a.manifestBytes, Buffer.from('\n')]) };
    if (a.index) {
      if (opts.config) throw new ModctlError('E_IS_INDEX', `${args[0]} is an image index; it has no config`);
      return { json: { Reference: a.tagged.name, Digest: a.tagged.descriptor.digest, Index: a.index }, text: indexText(a.tagged.name, a.tagged.descriptor.digest, a.index) };
    }
    const m = a.manifest!;
    const configBytes = await store.readBlob(m.config.digest);
    if (opts.config) return { raw: Buffer.concat([configBytes, Buffer.from('\n')]) };
    let config: any;
    try {
      config = JSON.parse(configBytes.toString('utf8'));
    } catch {
      config = undefined;
    }
    const s = summarize(a.tagged.name, a.tagged.descriptor.digest, a.manifestBytes.length, m, config);
    return { json: s, text: summaryText(s) };
  },
};

async function inspectRemote(input: string, opts: Record<string, any>, ctx: Parameters<CommandDefinition['run']>[2]) {
  const ref = parseReference(input);
  const ro = remoteOptions(opts, ctx);
  const m = await fetchManifest(ref, ro);
  const name = formatReference(ref);
  if (opts.manifest) return { raw: Buffer.concat([m.bytes, Buffer.from('\n')]) };
  const parsed = parseManifestJson(m.bytes, `manifest of ${name}`);
  if (isIndex(parsed)) {
    if (opts.config) throw new ModctlError('E_IS_INDEX', `${input} is an image index; it has no config`);
    return { json: { Reference: name, Digest: m.descriptor.digest, Index: parsed }, text: indexText(name, m.descriptor.digest, parsed) };
  }
  const configBytes = await fetchBlobBytes(ref, parsed.config, ro);
  if (opts.config) return { raw: Buffer.concat([configBytes, Buffer.from('\n')]) };
  let config: any;
  try {
    config = JSON.parse(configBytes.toString('utf8'));
  } catch {
    config = undefined;
  }
  const s = summarize(name, m.descriptor.digest, m.bytes.length, parsed, config);
  return { json: s, text: summaryText(s) };
}
