import type { CommandDefinition } from '../define.js';
import { addTransferFlags, remoteOptions } from '../remote-flags.js';
import { pullArtifact } from '../../remote/index.js';
import { parseReference } from '../../oci/reference.js';
import { humanBytes } from '../output.js';

export const pullCommand: CommandDefinition = {
  name: 'pull',
  summary: 'pull an artifact from a registry into the local store',
  progressVerb: 'Pulling',
  configure(cmd) {
    addTransferFlags(cmd.argument('<ref>', 'reference to pull (name:tag or name@sha256:…)'));
  },
  async run(args, opts, ctx) {
    const store = await ctx.store();
    const ref = parseReference(args[0]);
    const res = await pullArtifact(store, ref, { ...remoteOptions(opts, ctx), concurrency: opts.concurrency, onProgress: ctx.progress });
    return {
      json: res,
      text: `Pulled ${res.reference}\nDigest: ${res.digest}\nBlobs: ${res.blobsFetched} downloaded (${humanBytes(res.bytesDownloaded)}), ${res.blobsSkipped} already in the store`,
    };
  },
};
