import path from 'node:path';
import type { CommandDefinition } from '../define.js';
import { positiveInt } from '../define.js';
import { loadManifest } from '../../content/artifact.js';
import { extractLayers } from '../../extract/extract.js';
import { humanBytes } from '../output.js';
import { layerFilepath } from '../../oci/media-types.js';

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
  },
  async run(args, opts, ctx) {
    const store = await ctx.store();
    const a = await loadManifest(store, args[0]);
    const outputDir = path.resolve(ctx.cwd, opts.output);
    const res = await extractLayers(a.manifest.layers, {
      outputDir,
      force: !!opts.force,
      concurrency: opts.concurrency,
      signal: ctx.signal,
      onWarning: ctx.warn,
      onProgress: (ev) => ctx.progress({ type: 'advance', id: ev.layer.digest, bytes: ev.bytes }),
      openBlob: async (layer) => {
        ctx.progress({ type: 'start', id: layer.digest, label: layerFilepath(layer.annotations) ?? layer.digest, total: layer.size });
        return store.openBlob(layer.digest);
      },
    });
    const written = res.files.filter((f) => f.action === 'written').length;
    const kept = res.files.filter((f) => f.action === 'kept').length;
    return {
      json: { reference: a.tagged.name, digest: a.tagged.descriptor.digest, output: outputDir, ...res },
      text: `Extracted ${a.tagged.name} to ${outputDir}: ${res.files.length} files (${written} written, ${kept} already identical), ${humanBytes(res.bytes)}`,
    };
  },
};
