import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { CommandDefinition } from '../define.js';
import type { CliContext } from '../context.js';
import { addTransferFlags, remoteOptions } from '../remote-flags.js';
import { extractRemote, matchLayers, resolveRemoteArtifact } from '../../remote/extract-remote.js';
import { RegistryClient, type RemoteOptions } from '../../remote/index.js';
import { openRemoteBlob } from '../../remote/blob-source.js';
import { parseReference, type Reference } from '../../oci/reference.js';
import { VerifyingStream } from '../../oci/digest.js';
import { layerEncoding } from '../../extract/extract.js';
import type { VariantSelector } from '../../formats/variants.js';
import { humanBytes } from '../output.js';
import { ModctlError } from '../../errors.js';
import { addVariantFlag, variantSelectors } from './extract.js';

function collect(v: string, prev: string[] = []): string[] {
  return [...prev, ...v.split(',').map((s) => s.trim()).filter(Boolean)];
}

export const fetchCommand: CommandDefinition = {
  name: 'fetch',
  summary: 'download only the files matching glob patterns from a remote artifact',
  progressVerb: 'Fetching',
  configure(cmd) {
    addTransferFlags(cmd.argument('<ref>', 'remote reference'))
      .requiredOption('-o, --output <dir>', 'output directory; - writes the single matching file to standard output')
      .requiredOption('-p, --patterns <globs>', 'comma-separated globs over the file paths (repeatable; ** crosses directories)', collect)
      .option('-f, --force', 'overwrite existing files that differ');
    addVariantFlag(cmd);
  },
  async run(args, opts, ctx) {
    const ref = parseReference(args[0]);
    const ro = remoteOptions(opts, ctx);
    const selectors = variantSelectors(opts);
    const patterns: string[] = opts.patterns;
    if (!patterns.length) throw new ModctlError('E_USAGE', '--patterns needs at least one glob', { exitCode: 2 });
    if (opts.output === '-') return fetchToStdout(ref, patterns, selectors, ro, ctx);
    const outputDir = path.resolve(ctx.cwd, opts.output);
    const res = await extractRemote(ref, { ...ro, outputDir, patterns, force: !!opts.force, concurrency: opts.concurrency, onProgress: ctx.progress, variant: selectors });
    return {
      json: { ...res, output: outputDir },
      text: `Fetched ${res.selected.length} of the artifact's layers to ${outputDir}: ${res.selected.join(', ')} (${humanBytes(res.bytes)})`,
    };
  },
};

/** `fetch --output -`: stream exactly one raw file to stdout, verified while it flows. */
async function fetchToStdout(ref: Reference, patterns: string[], selectors: VariantSelector[], ro: RemoteOptions, ctx: CliContext) {
  const client = new RegistryClient(ref.registry, ro);
  try {
    const { normalized } = await resolveRemoteArtifact(client, ref, { variant: selectors });
    const hits = matchLayers(normalized, patterns);
    if (hits.length !== 1) {
      throw new ModctlError('E_NO_MATCH', `--output - needs exactly one matching file; ${hits.length} matched`, {
        hint: `the artifact has: ${normalized.layers.map((l) => l.name ?? '(unnamed)').join(', ')}`,
      });
    }
    const { layer, target, name } = hits[0];
    const encoding = target ? target.encoding : layerEncoding(layer);
    if (encoding !== 'raw') throw new ModctlError('E_USAGE', `${name} is a ${layer.mediaType} layer; only raw files can go to standard output`, { exitCode: 2 });
    const src = openRemoteBlob(client, ref.repository, layer, 0, { signal: ctx.signal, onRetry: ctx.warn });
    // A mismatch is detected at the end; the bytes already written cannot be recalled, but the exit code says so.
    await pipeline(src, new VerifyingStream(layer.digest, layer.size), ctx.io.stdout, { signal: ctx.signal, end: false });
    return;
  } finally {
    await client.close();
  }
}
