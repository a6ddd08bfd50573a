import path from 'node:path';
import type { CommandDefinition } from '../define.js';
import { addTransferFlags, remoteOptions } from '../remote-flags.js';
import { pullArtifact } from '../../remote/index.js';
import { extractRemote } from '../../remote/extract-remote.js';
import { formatReference, parseReference } from '../../oci/reference.js';
import { humanBytes } from '../output.js';
import { ModctlError } from '../../errors.js';
import { loadManifest } from '../../content/artifact.js';
import { extractLayers } from '../../extract/extract.js';

export const pullCommand: CommandDefinition = {
  name: 'pull',
  summary: 'pull an artifact from a registry into the local store (and optionally extract it)',
  progressVerb: 'Pulling',
  configure(cmd) {
    addTransferFlags(cmd.argument('<ref>', 'reference to pull (name:tag or name@sha256:…)'))
      .option('--extract-dir <dir>', 'after pulling, extract the files into this directory')
      .option('--extract-from-remote', 'with --extract-dir: stream layers straight into the directory, storing nothing locally')
      .option('-f, --force', 'with --extract-dir: overwrite existing files that differ');
  },
  async run(args, opts, ctx) {
    const ref = parseReference(args[0]);
    const ro = remoteOptions(opts, ctx);
    if (opts.extractFromRemote && !opts.extractDir) {
      throw new ModctlError('E_USAGE', '--extract-from-remote needs --extract-dir <dir>', { exitCode: 2 });
    }
    if (opts.extractFromRemote) {
      const outputDir = path.resolve(ctx.cwd, opts.extractDir);
      const res = await extractRemote(ref, { ...ro, outputDir, force: !!opts.force, concurrency: opts.concurrency, onProgress: ctx.progress });
      const written = res.files.filter((f) => f.action === 'written').length;
      return {
        json: { ...res, output: outputDir },
        text: `Extracted ${res.reference} to ${outputDir} from the registry: ${res.files.length} files (${written} written, ${res.files.length - written} already identical), ${humanBytes(res.bytes)}`,
      };
    }
    const store = await ctx.store();
    const res = await pullArtifact(store, ref, { ...ro, concurrency: opts.concurrency, onProgress: ctx.progress });
    let text = `Pulled ${res.reference}\nDigest: ${res.digest}\nBlobs: ${res.blobsFetched} downloaded (${humanBytes(res.bytesDownloaded)}), ${res.blobsSkipped} already in the store`;
    if (!opts.extractDir) return { json: res, text };
    const outputDir = path.resolve(ctx.cwd, opts.extractDir);
    const a = await loadManifest(store, formatReference(ref));
    const ex = await extractLayers(a.manifest.layers, {
      outputDir,
      force: !!opts.force,
      concurrency: opts.concurrency,
      signal: ctx.signal,
      onWarning: ctx.warn,
      openBlob: async (layer) => store.openBlob(layer.digest),
    });
    text += `\nExtracted ${ex.files.length} files to ${outputDir}`;
    return { json: { ...res, extracted: { output: outputDir, ...ex } }, text };
  },
};
