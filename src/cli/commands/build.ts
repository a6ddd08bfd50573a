import { Option } from 'commander';
import path from 'node:path';
import type { CommandDefinition } from '../define.js';
import { boolValue, positiveInt } from '../define.js';
import { BUILD_FORMATS, build, parseSourceDateEpoch, readModelfile, type BuildCommonOptions } from '../../build/builder.js';
import { remoteBuild } from '../../build/remote-build.js';
import { addRemoteFlags, remoteOptions } from '../remote-flags.js';
import { humanBytes } from '../output.js';

export const buildCommand: CommandDefinition = {
  name: 'build',
  summary: 'build a model artifact from a Modelfile into the local store (or straight to a registry)',
  progressVerb: 'Building',
  configure(cmd) {
    cmd
      .argument('[context]', 'build context directory (Modelfile paths resolve against it)', '.')
      .requiredOption('-t, --target <ref>', 'reference to tag the artifact with, e.g. registry.example.com/models/llama3:v1')
      .option('-f, --modelfile <file>', 'Modelfile path, relative to the current directory; - reads standard input', 'Modelfile')
      .option('--raw [bool]', 'one raw layer per file (true) or a deterministic tar layer per file (false)', boolValue('--raw'), true)
      .option('--no-creation-time', 'leave descriptor.createdAt out of the config (reproducible builds)')
      .option('-c, --concurrency <n>', 'files processed in parallel', positiveInt('--concurrency'), 5)
      .option('--source-url <url>', 'descriptor.sourceURL (default: git origin of the context)')
      .option('--source-revision <rev>', 'descriptor.revision (default: git HEAD of the context)')
      .option('--reasoning', 'set config.capabilities.reasoning = true')
      .option('--no-modelfile-annotation', 'do not store the Modelfile in the manifest annotation')
      .addOption(new Option('--format <format>', 'output dialect').choices([...BUILD_FORMATS]).default('modelpack'))
      .option('--no-infer', 'do not fill empty config fields from the GGUF/safetensors headers')
      .option('--output-remote', 'push straight to the registry named by --target, reading each file once; nothing is stored locally');
    addRemoteFlags(cmd);
  },
  async run(args, opts, ctx) {
    const contextDir = path.resolve(ctx.cwd, args[0] ?? '.');
    const modelfile = await readModelfile(opts.modelfile, ctx.cwd, ctx.io.stdin);
    const common: BuildCommonOptions = {
      contextDir,
      modelfile,
      target: opts.target,
      raw: opts.raw,
      noCreationTime: opts.creationTime === false,
      sourceDateEpoch: parseSourceDateEpoch(ctx.env.SOURCE_DATE_EPOCH),
      sourceURL: opts.sourceUrl,
      sourceRevision: opts.sourceRevision,
      reasoning: !!opts.reasoning,
      format: opts.format,
      noInfer: opts.infer === false,
      noModelfileAnnotation: opts.modelfileAnnotation === false,
      concurrency: opts.concurrency,
      signal: ctx.signal,
      onProgress: ctx.progress,
      onWarning: ctx.warn,
    };
    if (opts.outputRemote) {
      // Only the digest cache lives in the store directory: the store itself is not opened (nothing is written).
      const res = await remoteBuild({ ...common, cacheDir: ctx.storageDir, remote: remoteOptions(opts, ctx) });
      const reused = res.layers.filter((l) => l.reused).length;
      return {
        json: res,
        text:
          `Successfully built model artifact: ${res.reference}\n` +
          `Digest: ${res.digest}\n` +
          `Layers: ${res.layers.length} (${reused} already on the registry), total ${humanBytes(res.size)}\n` +
          `Pushed: ${res.blobsUploaded} blobs uploaded (${humanBytes(res.bytesUploaded)}), ${res.blobsSkipped} already there`,
      };
    }
    const store = await ctx.store();
    const res = await build({ ...common, store });
    const reused = res.layers.filter((l) => l.reused).length;
    return {
      json: res,
      text:
        `Successfully built model artifact: ${res.reference}\n` +
        `Digest: ${res.digest}\n` +
        `Layers: ${res.layers.length} (${reused} unchanged), total ${humanBytes(res.size)}`,
    };
  },
};
