import type { CommandDefinition } from '../define.js';
import { boolValue } from '../define.js';
import { addRemoteFlags, remoteOptions } from '../remote-flags.js';
import { attach, readConfigFile } from '../../build/attach.js';
import { parseSourceDateEpoch } from '../../build/builder.js';
import { humanBytes } from '../output.js';

export const attachCommand: CommandDefinition = {
  name: 'attach',
  summary: 'add a file to an existing artifact (or replace one with --force) and tag the result',
  progressVerb: 'Attaching',
  configure(cmd) {
    cmd
      .argument('<file>', 'the file to add')
      .requiredOption('-s, --source <ref>', 'the artifact to start from')
      .requiredOption('-t, --target <ref>', 'reference for the new artifact (may equal the source)')
      .option('-d, --destination-dir <dir>', "the file's directory inside the artifact (default: its path relative to the current directory)")
      .option('-f, --force', 'replace a layer that has the same path')
      .option('--raw [bool]', 'add the raw file (true) or a deterministic tar of it (false)', boolValue('--raw'), true)
      .option('--config <json-file>', 'use this JSON as the model config (its modelfs.diffIds are recomputed)')
      .option('--output-remote', 'read the source from, and push the result to, the registry instead of the local store');
    addRemoteFlags(cmd);
  },
  async run(args, opts, ctx) {
    const remote = !!opts.outputRemote;
    const res = await attach({
      file: args[0],
      cwd: ctx.cwd,
      source: opts.source,
      target: opts.target,
      destinationDir: opts.destinationDir,
      force: !!opts.force,
      raw: opts.raw,
      outputRemote: remote,
      remote: remote ? remoteOptions(opts, ctx) : undefined,
      config: opts.config !== undefined ? await readConfigFile(opts.config, ctx.cwd) : undefined,
      sourceDateEpoch: parseSourceDateEpoch(ctx.env.SOURCE_DATE_EPOCH),
      store: remote ? undefined : await ctx.store(),
      cacheDir: ctx.storageDir,
      signal: ctx.signal,
      onProgress: ctx.progress,
      onWarning: ctx.warn,
    });
    const lines = [
      `${res.replaced ? 'Replaced' : 'Attached'} ${res.layer.path} (${res.layer.mediaType}, ${humanBytes(res.layer.size)})`,
      `Successfully attached to model artifact: ${res.reference}`,
      `Digest: ${res.digest}`,
    ];
    if (res.pushed) lines.push(`Pushed: ${res.blobsUploaded} blobs uploaded (${humanBytes(res.bytesUploaded)}), ${res.blobsMounted} mounted, ${res.blobsSkipped} already there`);
    return { json: res, text: lines.join('\n') };
  },
};
