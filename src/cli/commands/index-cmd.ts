import type { CommandDefinition } from '../define.js';
import type { CliContext } from '../context.js';
import { addRemoteFlags, remoteOptions } from '../remote-flags.js';
import { loadArtifact, parseManifestJson, isIndex } from '../../content/artifact.js';
import { ModctlError, UsageError } from '../../errors.js';
import { digestOf } from '../../oci/digest.js';
import { MT_MODEL_MANIFEST, MT_OCI_INDEX, MT_OCI_MANIFEST } from '../../oci/media-types.js';
import { formatReference, parseReference, repoName, type Reference } from '../../oci/reference.js';
import type { Descriptor, Manifest } from '../../oci/types.js';
import { RegistryClient } from '../../remote/index.js';
import { fetchConfigBytes } from '../../remote/extract-remote.js';
import { normalizeArtifact, parseConfig } from '../../formats/normalize.js';
import { buildVariantIndex, describeVariant, variantAnnotations, type VariantInput } from '../../formats/variants.js';

/** One variant: its manifest descriptor and the `org.cncf.model.variant.*` annotations read from its config. */
function variantInput(name: string, desc: Descriptor, manifestBytes: Buffer, configBytes: Buffer): VariantInput {
  const parsed = parseManifestJson(manifestBytes, `manifest of ${name}`);
  if (isIndex(parsed)) throw new UsageError(`${name} is itself an image index; an index of variants takes single models`);
  const m: Manifest = parsed;
  const summary = normalizeArtifact(m, parseConfig(configBytes)).summary;
  const descriptor: Descriptor = { mediaType: m.mediaType ?? desc.mediaType ?? MT_OCI_MANIFEST, digest: desc.digest, size: desc.size };
  if (m.artifactType) descriptor.artifactType = m.artifactType;
  return { descriptor, annotations: variantAnnotations(summary), name };
}

/** The index's artifactType: the variants' common one, else the ModelPack manifest type. */
function indexArtifactType(variants: VariantInput[]): string {
  const types = new Set(variants.map((v) => v.descriptor.artifactType));
  const only = types.size === 1 ? [...types][0] : undefined;
  return only ?? MT_MODEL_MANIFEST;
}

export const indexCreateCommand: CommandDefinition = {
  name: 'index-create',
  summary: 'make an image index of model variants (one per quantization/format/size), tagged as <ref>',
  configure(cmd) {
    addRemoteFlags(
      cmd
        .argument('<ref>', 'reference for the index')
        .argument('<variant-ref...>', 'the variants (single models), in the local store or, with --remote, on the registry')
        .option('--remote', 'build the index from the variants on the registry and push it there (variants must be in the same repository)'),
    );
  },
  async run(args, opts, ctx) {
    const [target, ...variantRefs] = args;
    const ref = parseReference(target);
    if (ref.digest) throw new UsageError(`the index reference ${target} must be a tag, not a digest`);
    return opts.remote ? createRemote(ref, variantRefs, opts, ctx) : createLocal(ref, variantRefs, ctx);
  },
};

async function createLocal(ref: Reference, variantRefs: string[], ctx: CliContext) {
  const store = await ctx.store();
  const variants: VariantInput[] = [];
  for (const v of variantRefs) {
    const a = await loadArtifact(store, v);
    if (a.index) throw new UsageError(`${v} is itself an image index; an index of variants takes single models`);
    const configBytes = await store.readBlob(a.manifest!.config.digest);
    variants.push(variantInput(a.tagged.name, { ...a.tagged.descriptor, size: a.manifestBytes.length }, a.manifestBytes, configBytes));
  }
  const bytes = Buffer.from(JSON.stringify(buildVariantIndex(variants, indexArtifactType(variants), ctx.warn)));
  const put = await store.putBytes(bytes);
  const name = formatReference(ref);
  const artifactType = indexArtifactType(variants);
  await store.tag(name, { mediaType: MT_OCI_INDEX, digest: put.digest, size: put.size, artifactType });
  return result(name, put.digest, put.size, artifactType, variants, `Push it with: modctl push ${name}`);
}

async function createRemote(ref: Reference, variantRefs: string[], opts: Record<string, any>, ctx: CliContext) {
  const refs = variantRefs.map((v) => parseReference(v));
  for (const [i, r] of refs.entries()) {
    if (r.registry !== ref.registry || r.repository !== ref.repository) {
      throw new UsageError(`variant ${variantRefs[i]} is not in ${repoName(ref)}; with --remote every variant must be in the index's repository`, {
        hint: `copy it there first (modctl pull ${variantRefs[i]}, then modctl tag and push), or build the index locally`,
      });
    }
  }
  const client = new RegistryClient(ref.registry, remoteOptions(opts, ctx));
  try {
    client.addScopeHints(client.pushScope(ref.repository));
    const variants: VariantInput[] = [];
    for (const [i, r] of refs.entries()) {
      const fetched = await client.getManifest(r.repository, r.digest ?? r.tag ?? 'latest');
      const parsed = parseManifestJson(fetched.bytes, `manifest of ${variantRefs[i]}`);
      if (isIndex(parsed)) throw new UsageError(`${variantRefs[i]} is itself an image index; an index of variants takes single models`);
      const configBytes = await fetchConfigBytes(client, r.repository, parsed.config);
      variants.push(variantInput(formatReference(r), fetched.descriptor, fetched.bytes, configBytes));
    }
    const artifactType = indexArtifactType(variants);
    const bytes = Buffer.from(JSON.stringify(buildVariantIndex(variants, artifactType, ctx.warn)));
    const { digest } = await client.putManifest(ref.repository, ref.tag ?? 'latest', bytes, MT_OCI_INDEX);
    const expected = digestOf(bytes);
    if (digest && digest !== expected) {
      throw new ModctlError('E_DIGEST_MISMATCH', `the registry stored the index as ${digest}, expected ${expected}`);
    }
    return result(formatReference(ref), expected, bytes.length, artifactType, variants, 'Pushed to the registry.');
  } finally {
    await client.close();
  }
}

function result(name: string, digest: string, size: number, artifactType: string, variants: VariantInput[], tail: string) {
  const lines = variants.map((v) => `  ${v.descriptor.digest.slice(0, 19)}  ${describeVariant({ ...v.descriptor, annotations: v.annotations })}  (${v.name})`);
  return {
    json: {
      reference: name,
      digest,
      size,
      mediaType: MT_OCI_INDEX,
      artifactType,
      variants: variants.map((v) => ({ reference: v.name, digest: v.descriptor.digest, size: v.descriptor.size, annotations: v.annotations })),
    },
    text: `Created index ${name}\nDigest: ${digest}\nVariants:\n${lines.join('\n')}\n${tail}`,
  };
}
