import path from 'node:path';
import type { CommandDefinition } from '../define.js';
import { addTransferFlags, remoteOptions } from '../remote-flags.js';
import { fetchManifest, pullArtifact } from '../../remote/index.js';
import { extractRemote } from '../../remote/extract-remote.js';
import { formatReference, parseReference, type Reference } from '../../oci/reference.js';
import { humanBytes } from '../output.js';
import { ModctlError } from '../../errors.js';
import { isIndex, parseManifestJson } from '../../content/artifact.js';
import { selectVariant } from '../../formats/variants.js';
import { addVariantFlag, extractStoredModel, loadStoredModel, variantSelectors } from './extract.js';

export const pullCommand: CommandDefinition = {
  name: 'pull',
  summary: 'pull an artifact from a registry into the local store (and optionally extract it)',
  progressVerb: 'Pulling',
  configure(cmd) {
    addTransferFlags(cmd.argument('<ref>', 'reference to pull (name:tag or name@sha256:…)'))
      .option('--extract-dir <dir>', 'after pulling, extract the files into this directory')
      .option('--extract-from-remote', 'with --extract-dir: stream layers straight into the directory, storing nothing locally')
      .option('-f, --force', 'with --extract-dir: overwrite existing files that differ');
    addVariantFlag(cmd);
  },
  async run(args, opts, ctx) {
    const ref = parseReference(args[0]);
    const ro = remoteOptions(opts, ctx);
    const selectors = variantSelectors(opts);
    if (opts.extractFromRemote && !opts.extractDir) {
      throw new ModctlError('E_USAGE', '--extract-from-remote needs --extract-dir <dir>', { exitCode: 2 });
    }
    if (opts.extractFromRemote) {
      const outputDir = path.resolve(ctx.cwd, opts.extractDir);
      const res = await extractRemote(ref, { ...ro, outputDir, force: !!opts.force, concurrency: opts.concurrency, onProgress: ctx.progress, variant: selectors });
      const written = res.files.filter((f) => f.action === 'written').length;
      return {
        json: { ...res, output: outputDir },
        text: `Extracted ${res.reference} to ${outputDir} from the registry: ${res.files.length} files (${written} written, ${res.files.length - written} already identical), ${humanBytes(res.bytes)}`,
      };
    }

    // With --variant only the chosen variant is pulled, and the reference is tagged to it locally. Without it, an
    // index that cannot be extracted (several variants) is refused before anything is downloaded.
    let source: Reference = ref;
    let tagAs: string | undefined;
    if (selectors.length || opts.extractDir) {
      const top = await fetchManifest(ref, ro);
      const parsed = parseManifestJson(top.bytes, `manifest of ${formatReference(ref)}`);
      if (isIndex(parsed)) {
        const child = selectVariant(parsed, selectors, formatReference(ref));
        if (selectors.length) {
          source = { ...ref, digest: child.digest };
          tagAs = ref.tag ? formatReference({ ...ref, digest: undefined }) : formatReference(source);
        }
      } else if (selectors.length) {
        throw new ModctlError('E_NOT_INDEX', `${formatReference(ref)} is a single model, not an image index of variants; --variant does not apply`, { hint: 'drop --variant', exitCode: 2 });
      }
    }
    const store = await ctx.store();
    const res = await pullArtifact(store, source, { ...ro, concurrency: opts.concurrency, onProgress: ctx.progress, tagAs });
    const local = tagAs ?? formatReference(ref);
    let text = `Pulled ${res.reference}${tagAs ? ` as ${tagAs}` : ''}\nDigest: ${res.digest}\nBlobs: ${res.blobsFetched} downloaded (${humanBytes(res.bytesDownloaded)}), ${res.blobsSkipped} already in the store`;
    if (!opts.extractDir) return { json: res, text };
    const outputDir = path.resolve(ctx.cwd, opts.extractDir);
    // The variant (if any) was pulled under `local`; a single-entry index picks its entry.
    const model = await loadStoredModel(store, local, tagAs ? [] : selectors);
    const ex = await extractStoredModel(store, model, { outputDir, force: !!opts.force, concurrency: opts.concurrency }, ctx);
    text += `\nExtracted ${ex.files.length} files to ${outputDir}`;
    return { json: { ...res, format: model.normalized.format, extracted: { output: outputDir, ...ex } }, text };
  },
};
