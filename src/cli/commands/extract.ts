import path from 'node:path';
import type { Command } from 'commander';
import type { CommandDefinition } from '../define.js';
import { positiveInt } from '../define.js';
import type { CliContext } from '../context.js';
import { loadArtifact, parseManifestJson, isIndex, type LoadedArtifact } from '../../content/artifact.js';
import type { LocalStore } from '../../content/local-store.js';
import { extractLayers, type ExtractResult } from '../../extract/extract.js';
import { extractionInput, needsConfig, normalizeArtifact, parseConfig, type NormalizedArtifact } from '../../formats/normalize.js';
import { parseVariantSelectors, selectVariant, type VariantSelector } from '../../formats/variants.js';
import type { Descriptor, Manifest } from '../../oci/types.js';
import { ModctlError, NotFoundError } from '../../errors.js';
import { humanBytes } from '../output.js';

/** `--variant key=value` (repeatable), shared by pull, fetch and extract. */
export function addVariantFlag(cmd: Command): Command {
  return cmd.option(
    '--variant <key=value>',
    'pick one variant of an image index: quantization, format, paramSize, precision, digest or any annotation key (repeatable; values case-insensitive)',
    (v: string, prev: string[] = []) => [...prev, v],
  );
}

export function variantSelectors(opts: Record<string, any>): VariantSelector[] {
  return parseVariantSelectors(opts.variant as string[] | undefined);
}

export interface StoredModel {
  artifact: LoadedArtifact;
  manifest: Manifest;
  /** The chosen index entry when the reference names an index. */
  variant?: Descriptor;
  normalized: NormalizedArtifact;
}

/**
 * Load a stored model for extraction: pick the variant of an index, read the config when the dialect needs it
 * (KitOps) and normalise the layers.
 */
export async function loadStoredModel(store: LocalStore, ref: string, selectors: VariantSelector[]): Promise<StoredModel> {
  const artifact = await loadArtifact(store, ref);
  let manifest: Manifest;
  let variant: Descriptor | undefined;
  if (artifact.index) {
    variant = selectVariant(artifact.index, selectors, artifact.tagged.name);
    let bytes: Buffer;
    try {
      bytes = await store.readBlob(variant.digest);
    } catch (e) {
      if (e instanceof NotFoundError) {
        throw new NotFoundError(`variant ${variant.digest} of ${artifact.tagged.name} is not in the local store`, { hint: `pull it first: modctl pull ${artifact.tagged.name}` });
      }
      throw e;
    }
    const parsed = parseManifestJson(bytes, `manifest ${variant.digest}`);
    if (isIndex(parsed)) throw new ModctlError('E_MANIFEST_INVALID', `nested image indexes are not supported (${variant.digest})`);
    manifest = parsed;
  } else {
    if (selectors.length) {
      throw new ModctlError('E_NOT_INDEX', `${artifact.tagged.name} is a single model, not an image index of variants; --variant does not apply`, { hint: 'drop --variant', exitCode: 2 });
    }
    manifest = artifact.manifest!;
  }
  const config = needsConfig(manifest) ? parseConfig(await store.readBlob(manifest.config.digest)) : undefined;
  return { artifact, manifest, variant, normalized: normalizeArtifact(manifest, config) };
}

/** Extract a loaded model from the store into `outputDir`. */
export async function extractStoredModel(
  store: LocalStore,
  model: StoredModel,
  opts: { outputDir: string; force: boolean; concurrency?: number },
  ctx: CliContext,
): Promise<ExtractResult & { skipped?: string[] }> {
  const input = extractionInput(model.normalized.layers);
  for (const s of input.skipped) ctx.warn(`${s.skip}; skipped`);
  const res = await extractLayers(input.layers, {
    outputDir: opts.outputDir,
    force: opts.force,
    concurrency: opts.concurrency,
    signal: ctx.signal,
    onWarning: ctx.warn,
    target: input.target,
    onProgress: (ev) => ctx.progress({ type: 'advance', id: ev.layer.digest, bytes: ev.bytes }),
    openBlob: async (layer) => {
      ctx.progress({ type: 'start', id: layer.digest, label: input.label(layer), total: layer.size });
      return store.openExistingBlob(layer.digest);
    },
  });
  return input.skipped.length ? { ...res, skipped: input.skipped.map((s) => s.layer.digest) } : res;
}

export const extractCommand: CommandDefinition = {
  name: 'extract',
  summary: 'recreate the original files of a stored artifact in a directory',
  progressVerb: 'Extracting',
  configure(cmd) {
    cmd
      .argument('<ref>', 'reference in the local store')
      .requiredOption('-o, --output <dir>', 'output directory (created if missing)')
      .option('-c, --concurrency <n>', 'layers extracted in parallel', positiveInt('--concurrency'), 5)
      .option('-f, --force', 'overwrite existing files that differ');
    addVariantFlag(cmd);
  },
  async run(args, opts, ctx) {
    const selectors = variantSelectors(opts);
    const store = await ctx.store();
    const model = await loadStoredModel(store, args[0], selectors);
    const outputDir = path.resolve(ctx.cwd, opts.output);
    const res = await extractStoredModel(store, model, { outputDir, force: !!opts.force, concurrency: opts.concurrency }, ctx);
    const written = res.files.filter((f) => f.action === 'written').length;
    const kept = res.files.filter((f) => f.action === 'kept').length;
    const a = model.artifact;
    const json: Record<string, unknown> = { reference: a.tagged.name, digest: a.tagged.descriptor.digest, format: model.normalized.format, output: outputDir, ...res };
    if (model.variant) json.variantDigest = model.variant.digest;
    return {
      json,
      text: `Extracted ${a.tagged.name} to ${outputDir}: ${res.files.length} files (${written} written, ${kept} already identical), ${humanBytes(res.bytes)}`,
    };
  },
};
