/**
 * Builds the undici dispatcher for a registry session: one keep-alive Agent (connections per origin well above the
 * transfer concurrency), TLS settings from --ca-file/--insecure, and an EnvHttpProxyAgent honouring
 * HTTPS_PROXY/HTTP_PROXY/NO_PROXY (upper case first, then lower case, as Go tools do) read from the caller's env,
 * never from process.env behind the caller's back.
 */
import { readFileSync } from 'node:fs';
import { packageVersion } from '../util/package-root.js';
import type { Dispatcher } from 'undici';
// By path, not through undici's index: that also loads fetch, WebSocket, the caches and the mocks (~20 ms of every
// start-up). The index is what adds request(), connect() (the proxy agent's CONNECT tunnels) and the other API
// methods to every dispatcher, so that is done here the same way (src/types/undici-lib.d.ts types these paths).
import Agent from 'undici/lib/dispatcher/agent.js';
import EnvHttpProxyAgent from 'undici/lib/dispatcher/env-http-proxy-agent.js';
import DispatcherBase from 'undici/lib/dispatcher/dispatcher.js';
import api from 'undici/lib/api/index.js';
import { ModctlError } from '../errors.js';

const proto = DispatcherBase.prototype as unknown as Record<string, unknown>;
for (const [name, fn] of Object.entries(api)) proto[name] ??= fn;

export interface TransportOptions {
  insecure?: boolean;
  /** PEM of the CA to trust (readCaFile). */
  ca?: string;
  env?: NodeJS.ProcessEnv;
  /** Parallel transfers planned; sizes the per-origin pool. */
  concurrency?: number;
}

/** First non-empty of NAME, name (Go's httpproxy.getEnvAny). */
function envValue(env: NodeJS.ProcessEnv, name: string): string | undefined {
  for (const k of [name.toUpperCase(), name.toLowerCase()]) {
    const v = env[k];
    if (v) return v;
  }
  return undefined;
}

export function proxySettings(env: NodeJS.ProcessEnv): { httpProxy?: string; httpsProxy?: string; noProxy?: string } {
  return { httpProxy: envValue(env, 'http_proxy'), httpsProxy: envValue(env, 'https_proxy'), noProxy: envValue(env, 'no_proxy') };
}

/** The PEM of `--ca-file`; an unreadable file is a usage error. */
export function readCaFile(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new ModctlError('E_USAGE', `cannot read CA file ${file}: ${(e as Error).message}`, { exitCode: 2, cause: e });
  }
}

export function createDispatcher(opts: TransportOptions): Dispatcher {
  const env = opts.env ?? process.env;
  const tls = { ...(opts.ca ? { ca: opts.ca } : {}), rejectUnauthorized: !opts.insecure };
  const connections = Math.max(8, (opts.concurrency ?? 5) * 2);
  const base = {
    connections,
    // Idle keep-alive sockets are closed by close() at the end of each operation; 30 s covers gaps between requests.
    keepAliveTimeout: 30_000,
    keepAliveMaxTimeout: 600_000,
    connect: tls,
  };
  const proxy = proxySettings(env);
  if (proxy.httpProxy || proxy.httpsProxy) {
    return new EnvHttpProxyAgent({
      ...base,
      requestTls: tls,
      // Empty strings stop undici from falling back to process.env.
      httpProxy: proxy.httpProxy ?? '',
      httpsProxy: proxy.httpsProxy ?? '',
      noProxy: proxy.noProxy ?? '',
    });
  }
  return new Agent(base);
}

/** `modctl/<version>` from package.json. */
export function defaultUserAgent(): string {
  return `modctl/${packageVersion()}`;
}
