import type { CommandDefinition } from '../define.js';
import { positiveInt } from '../define.js';
import { addTransferFlags, remoteOptions } from '../remote-flags.js';
import { pushArtifact } from '../../remote/index.js';
import { formatReference, parseReference } from '../../oci/reference.js';
import { humanBytes } from '../output.js';

export const pushCommand: CommandDefinition = {
  name: 'push',
  summary: 'push an artifact from the local store to a registry',
  progressVerb: 'Pushing',
  configure(cmd) {
    addTransferFlags(cmd.argument('<ref>', 'reference in the local store; pushed to the registry it names'))
      .option('--chunk-size <bytes>', 'upload big blobs in chunked PATCH requests of this size (resumable per chunk)', positiveInt('--chunk-size'))
      .option('--from <ref>', 'push this local reference instead, under <ref>');
  },
  async run(args, opts, ctx) {
    const store = await ctx.store();
    const target = parseReference(args[0]);
    const source = opts.from ?? formatReference(target);
    const res = await pushArtifact(store, source, target, {
      ...remoteOptions(opts, ctx),
      concurrency: opts.concurrency,
      chunkSize: opts.chunkSize,
      onProgress: ctx.progress,
    });
    return {
      json: res,
      text: `Pushed ${res.reference}\nDigest: ${res.digest}\nBlobs: ${res.blobsPushed} uploaded (${humanBytes(res.bytesUploaded)}), ${res.blobsSkipped} already there${res.blobsMounted ? `, ${res.blobsMounted} mounted` : ''}`,
    };
  },
};
