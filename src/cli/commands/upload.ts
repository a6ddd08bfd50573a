import type { CommandDefinition } from '../define.js';
import { boolValue } from '../define.js';
import { addRemoteFlags, remoteOptions } from '../remote-flags.js';
import { uploadFile } from '../../build/upload-file.js';
import { parseSourceDateEpoch } from '../../build/builder.js';
import { humanBytes } from '../output.js';

export const uploadCommand: CommandDefinition = {
  name: 'upload',
  summary: "push one file's layer blob to a repository, so a later build --output-remote skips it",
  progressVerb: 'Uploading',
  configure(cmd) {
    cmd
      .argument('<file>', 'the file to upload')
      .requiredOption('--repo <repository>', 'target repository, e.g. registry.example.com/models/llama3 (no tag)')
      .option('--raw [bool]', 'upload the raw file (true) or a deterministic tar of it (false)', boolValue('--raw'), true)
      .option('--destination-dir <dir>', "the file's directory inside the artifact (default: its path relative to the current directory)");
    addRemoteFlags(cmd);
  },
  async run(args, opts, ctx) {
    const res = await uploadFile({
      file: args[0],
      cwd: ctx.cwd,
      repo: opts.repo,
      raw: opts.raw,
      destinationDir: opts.destinationDir,
      cacheDir: ctx.storageDir,
      remote: remoteOptions(opts, ctx),
      sourceDateEpoch: parseSourceDateEpoch(ctx.env.SOURCE_DATE_EPOCH),
      onProgress: ctx.progress,
      onWarning: ctx.warn,
    });
    const what = res.uploaded ? `Uploaded ${res.path} (${humanBytes(res.bytesUploaded)})` : `${res.path} is already in ${res.repository}`;
    return {
      json: res,
      text: `${what}\nRepository: ${res.repository}\nDigest: ${res.digest}\nLayer: ${JSON.stringify(res.descriptor, null, 2)}`,
    };
  },
};
