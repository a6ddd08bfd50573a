import { PassThrough, Readable } from 'node:stream';
import { main } from '../../src/cli/main.js';

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
  stdoutBytes: Buffer;
}

/** Run the CLI in-process with captured streams (no TTY, so no spinner and no colour). */
export async function runCli(args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; stdin?: string | Buffer } = {}): Promise<CliRun> {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  stdout.on('data', (c: Buffer) => out.push(c));
  stderr.on('data', (c: Buffer) => err.push(c));
  const code = await main(args, {
    stdout,
    stderr,
    stdin: opts.stdin !== undefined ? Readable.from([Buffer.from(opts.stdin)]) : undefined,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...opts.env },
    cwd: () => opts.cwd ?? process.cwd(),
  });
  const stdoutBytes = Buffer.concat(out);
  return { code, stdout: stdoutBytes.toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), stdoutBytes };
}
