import { promises as fsp } from 'node:fs';
import path from 'node:path';
import type { CommandDefinition } from '../define.js';
import { generateModelfile } from '../../modelfile/generate.js';
import { ModctlError } from '../../errors.js';
import { writeFileAtomic } from '../../util/fs.js';

function collect(v: string, prev: string[] = []): string[] {
  return [...prev, v];
}

/** `modctl modelfile generate`: registered as a sub-command group (`modelfile` → `generate`). */
export const modelfileGenerateCommand: CommandDefinition = {
  name: 'modelfile-generate',
  summary: 'write a Modelfile for a model directory (classifies files, reads config.json and weight headers)',
  configure(cmd) {
    cmd
      .argument('[dir]', 'model directory', '.')
      .option('-O, --output <dir>', 'directory to write the Modelfile into (- prints it to stdout)', '.')
      .option('--overwrite', 'replace an existing Modelfile')
      .option('-n, --name <name>', 'NAME (default: the directory name)')
      .option('--arch <arch>', 'ARCH')
      .option('--family <family>', 'FAMILY')
      .option('--format <format>', 'FORMAT')
      .option('--param-size <size>', 'PARAMSIZE')
      .option('--precision <precision>', 'PRECISION')
      .option('--quantization <q>', 'QUANTIZATION')
      .option('--exclude <glob>', 'leave matching paths out (repeatable; a directory drops its subtree)', collect)
      .option('--include <glob>', 'keep matching paths the walk would skip, e.g. hidden files (repeatable)', collect)
      .option('--no-infer', 'do not read weight headers for FORMAT/PARAMSIZE/QUANTIZATION/PRECISION/ARCH')
      .option('--timestamp', 'start with a "# Generated at" line like modctl');
  },
  async run(args, opts, ctx) {
    const dir = path.resolve(ctx.cwd, args[0] ?? '.');
    const res = await generateModelfile(dir, {
      name: opts.name,
      arch: opts.arch,
      family: opts.family,
      format: opts.format,
      paramSize: opts.paramSize,
      precision: opts.precision,
      quantization: opts.quantization,
      exclude: opts.exclude,
      include: opts.include,
      infer: opts.infer,
      timestamp: !!opts.timestamp,
    });
    res.warnings.forEach(ctx.warn);
    if (opts.output === '-') return { raw: res.text, json: undefined };
    const outDir = path.resolve(ctx.cwd, opts.output);
    const file = path.join(outDir, 'Modelfile');
    const exists = await fsp.lstat(file).then(() => true, () => false);
    if (exists && !opts.overwrite) {
      throw new ModctlError('E_EXISTS', `Modelfile already exists at ${file}`, { hint: 'use --overwrite to replace it' });
    }
    await writeFileAtomic(file, res.text);
    return {
      json: { path: file, files: res.files, spec: res.spec, warnings: res.warnings },
      text: `Wrote ${file} (${res.files.length} files: ${countKinds(res.files)})`,
    };
  },
};

function countKinds(files: Array<{ kind: string }>): string {
  const m = new Map<string, number>();
  for (const f of files) m.set(f.kind, (m.get(f.kind) ?? 0) + 1);
  return [...m].map(([k, n]) => `${n} ${k.toUpperCase()}`).join(', ');
}
