import type { Command } from 'commander';
import path from 'node:path';
import type { CliContext } from './context.js';
import type { RemoteOptions } from '../remote/index.js';
import { positiveInt } from './define.js';
import { VERSION } from './version.js';

/** Transport flags shared by every command that talks to a registry. */
export function addRemoteFlags(cmd: Command): Command {
  return cmd
    .option('--plain-http', 'use http instead of https')
    .option('--insecure', 'skip TLS certificate verification')
    .option('--ca-file <file>', 'extra CA certificate (PEM) to trust for the registry');
}

export function addTransferFlags(cmd: Command): Command {
  return addRemoteFlags(cmd).option('-c, --concurrency <n>', 'blobs transferred in parallel', positiveInt('--concurrency'), 5);
}

export function remoteOptions(opts: Record<string, any>, ctx: CliContext): RemoteOptions {
  return {
    plainHttp: !!opts.plainHttp,
    insecure: !!opts.insecure,
    caFile: opts.caFile ? path.resolve(ctx.cwd, opts.caFile) : undefined,
    env: ctx.env,
    signal: ctx.signal,
    onWarning: ctx.warn,
    userAgent: `modctl/${VERSION}`,
  };
}
