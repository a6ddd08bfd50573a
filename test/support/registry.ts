/**
 * Starts a real `docker-registry` (distribution 2.8.2, Debian package `docker-registry`) on 127.0.0.1 with a free
 * port, a fresh temp storage root and optional htpasswd / token auth and TLS. See docs/registry-client.md §15.
 *
 *   const reg = await startRegistry({ auth: 'htpasswd', deleteEnabled: true });
 *   try { … fetch(`${reg.url}/v2/`) … } finally { await reg.stop(); }
 *
 * The registry runs under a tiny `sh` wrapper in its own process group: `stop()` signals the whole group, a process
 * 'exit' hook kills it if a test never calls `stop()`, and a watchdog on the wrapper's stdin pipe kills the registry
 * if the test process dies abruptly (SIGKILL, runner timeout).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, constants as fsConstants, rmSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { startTokenServer, type TokenServer, type TokenServerOptions } from './token-server.js';
import { generateTlsCerts, registerExitCleanup, type TlsCerts } from './tls.js';

export interface RegistryOptions {
  /** Default 'none'. */
  auth?: 'none' | 'htpasswd' | 'token';
  /** Serve HTTPS with a throw-away CA (returned as `caFile`). Default false. */
  tls?: boolean;
  /** `storage.delete.enabled`. Default false (2.8 then answers 405 UNSUPPORTED to deletes). */
  deleteEnabled?: boolean;
  /** username → password for htpasswd/token auth. Default `{ testuser: <random> }`. */
  users?: Record<string, string>;
  /** `http.relativeurls`: answer relative `Location` headers. Default false (absolute, built from Host). */
  relativeUrls?: boolean;
  /** Extra options for the token server (auth: 'token'); `users` comes from `users` above. */
  tokenServer?: Omit<TokenServerOptions, 'users'>;
  /** Readiness timeout in ms. Default 15000. */
  startTimeoutMs?: number;
}

export interface RegistryHandle {
  /** "127.0.0.1:PORT" */
  host: string;
  /** http(s)://host */
  url: string;
  /** Filesystem storage root (`storage.filesystem.rootdirectory`). */
  dataDir: string;
  /** Path of the generated config.yml. */
  configFile: string;
  /** PEM CA to trust when `tls: true`. */
  caFile?: string;
  /** First configured user (htpasswd/token auth). */
  username?: string;
  password?: string;
  /** Token endpoint (auth: 'token'). */
  tokenRealm?: string;
  /** `service` the registry expects in tokens (auth: 'token'). */
  tokenService?: string;
  /** The token server (auth: 'token'), e.g. to inspect `requests`. */
  tokenServer?: TokenServer;
  /** stderr/stdout captured from docker-registry so far (last 64 KiB). */
  logs(): string;
  stop(): Promise<void>;
}

const INSTALL_HINT = 'install the `docker-registry` Debian package (apt-get install docker-registry)';
const LOG_CAP = 64 * 1024;

/**
 * sh wrapper ($0 = docker-registry, $1 = config.yml in the temp root): run the registry in the background, forward
 * TERM, and kill it when our stdin pipe closes.
 */
const WRAPPER = [
  'exec 3<&0',
  '"$0" serve "$1" </dev/null &',
  'p=$!',
  'trap \'kill -TERM "$p" 2>/dev/null\' TERM INT HUP',
  // Watchdog: EOF on fd 3 means the test process died without stop(): kill the registry, remove the temp root.
  '( cat <&3 >/dev/null; kill -TERM "$p"; i=0; while kill -0 "$p" && [ $i -lt 20 ]; do sleep 0.1; i=$((i+1)); done;' +
    ' kill -KILL "$p"; rm -rf "$(dirname "$1")" ) >/dev/null 2>&1 &',
  'exec 3<&-',
  'wait "$p"; r=$?',
  'while kill -0 "$p" 2>/dev/null; do wait "$p"; r=$?; done',
  'exit $r',
].join('\n');

function findOnPath(cmd: string): string | undefined {
  if (cmd.includes('/')) return cmd;
  for (const dir of (process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin').split(delimiter)) {
    if (!dir) continue;
    const p = join(dir, cmd);
    try {
      accessSync(p, fsConstants.X_OK);
      return p;
    } catch {
      // keep looking
    }
  }
  return undefined;
}

/** Absolute path of docker-registry (override with $DOCKER_REGISTRY_BIN) or a clear error. */
export function registryBinary(): string {
  const bin = findOnPath(process.env.DOCKER_REGISTRY_BIN || 'docker-registry');
  if (!bin) throw new Error(`docker-registry not found on PATH: ${INSTALL_HINT}`);
  return bin;
}

/** A currently free TCP port on 127.0.0.1 (bind to 0, read, close). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** `htpasswd -Bbn user pass` → one bcrypt line. */
export function htpasswdLine(user: string, pass: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('htpasswd', ['-Bbn', user, pass], { timeout: 30_000 }, (err, stdout, stderr) => {
      if (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
          reject(new Error('htpasswd not found on PATH: install the `apache2-utils` Debian package'));
        } else {
          reject(new Error(`htpasswd failed: ${err.message}\n${stderr}`));
        }
        return;
      }
      resolve(stdout.trim());
    });
  });
}

const q = (s: string | number | boolean): string => JSON.stringify(s); // JSON strings are valid YAML scalars

function renderConfig(c: {
  dataDir: string;
  port: number;
  secret: string;
  deleteEnabled: boolean;
  relativeUrls: boolean;
  tls?: TlsCerts;
  htpasswdFile?: string;
  token?: TokenServer;
}): string {
  const lines = [
    'version: 0.1',
    'log:',
    '  level: error',
    '  formatter: text',
    '  accesslog:',
    '    disabled: true',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${q(c.dataDir)}`,
    '  delete:',
    `    enabled: ${q(c.deleteEnabled)}`,
    '  redirect:',
    '    disable: true',
    '  maintenance:',
    '    uploadpurging:',
    '      enabled: false',
    'http:',
    `  addr: ${q(`127.0.0.1:${c.port}`)}`,
    `  secret: ${q(c.secret)}`,
    `  relativeurls: ${q(c.relativeUrls)}`,
  ];
  if (c.tls) {
    lines.push('  tls:', `    certificate: ${q(c.tls.certFile)}`, `    key: ${q(c.tls.keyFile)}`);
  }
  if (c.htpasswdFile) {
    lines.push('auth:', '  htpasswd:', '    realm: "test"', `    path: ${q(c.htpasswdFile)}`);
  }
  if (c.token) {
    lines.push(
      'auth:',
      '  token:',
      `    realm: ${q(c.token.url)}`,
      `    service: ${q(c.token.service)}`,
      `    issuer: ${q(c.token.issuer)}`,
      `    rootcertbundle: ${q(c.token.certFile)}`,
    );
  }
  return lines.join('\n') + '\n';
}

function killGroup(child: ChildProcess, sig: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, sig);
  } catch {
    // already gone
  }
}

/** One GET /v2/ with a short timeout → status, or undefined on connection errors. */
function probe(url: string, ca: Buffer | undefined): Promise<number | undefined> {
  return new Promise((resolve) => {
    const u = new URL('/v2/', url);
    const opts = { method: 'GET', agent: false as const, timeout: 1000, ...(ca ? { ca } : {}) };
    const req = (u.protocol === 'https:' ? httpsRequest : httpRequest)(u, opts, (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(undefined));
    req.end();
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Running {
  child: ChildProcess;
  port: number;
  logs: () => string;
  exited: Promise<void>;
}

async function launch(
  bin: string,
  configFile: string,
  url: string,
  port: number,
  ca: Buffer | undefined,
  timeoutMs: number,
): Promise<Running | 'EADDRINUSE'> {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    // REGISTRY_* variables would silently override the generated config.
    if (!k.startsWith('REGISTRY_')) env[k] = v;
  }
  const child = spawn('sh', ['-c', WRAPPER, bin, configFile], {
    detached: true,
    stdio: ['pipe', 'pipe', 'pipe'],
    env,
  });
  let log = '';
  const onData = (b: Buffer): void => {
    log += b.toString('utf8');
    if (log.length > LOG_CAP) log = log.slice(-LOG_CAP);
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  let exitInfo: string | undefined;
  const exited = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      exitInfo = signal ? `signal ${signal}` : `code ${code}`;
      resolve();
    });
    child.once('error', (err) => {
      exitInfo = `spawn error ${err.message}`;
      resolve();
    });
  });
  const unregister = registerExitCleanup(() => killGroup(child, 'SIGKILL'));
  void exited.then(() => {
    unregister();
    child.stdin?.destroy();
  });
  // Neither the child nor its pipes keep the test process alive: a forgotten stop() is caught by the exit hook.
  child.unref();
  for (const s of [child.stdin, child.stdout, child.stderr]) (s as unknown as { unref?: () => void } | null)?.unref?.();

  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (exitInfo !== undefined) {
      if (/address already in use/i.test(log)) return 'EADDRINUSE';
      throw new Error(`docker-registry exited before becoming ready (${exitInfo}); config ${configFile}; output:\n${log}`);
    }
    const status = await probe(url, ca);
    if (status === 200 || status === 401) break;
    if (Date.now() > deadline) {
      killGroup(child, 'SIGKILL');
      await exited;
      throw new Error(
        `docker-registry did not answer GET ${url}/v2/ with 200/401 within ${timeoutMs} ms ` +
          `(last status ${status ?? 'connection error'}); output:\n${log}`,
      );
    }
    await sleep(20);
  }
  return { child, port, logs: () => log, exited };
}

export async function startRegistry(opts: RegistryOptions = {}): Promise<RegistryHandle> {
  const bin = registryBinary();
  const auth = opts.auth ?? 'none';
  const root = await mkdtemp(join(tmpdir(), 'modctl-registry-'));
  const unregisterRm = registerExitCleanup(() => rmSync(root, { recursive: true, force: true }));

  let tls: TlsCerts | undefined;
  let token: TokenServer | undefined;
  let running: Running | undefined;
  const cleanupPartial = async (): Promise<void> => {
    if (running) {
      killGroup(running.child, 'SIGKILL');
      await running.exited;
    }
    await token?.stop();
    await tls?.cleanup();
    await rm(root, { recursive: true, force: true });
    unregisterRm();
  };

  try {
    const dataDir = join(root, 'data');
    await mkdir(dataDir);
    let users: Record<string, string> | undefined;
    if (auth !== 'none') {
      users = opts.users && Object.keys(opts.users).length > 0 ? { ...opts.users } : { testuser: randomBytes(12).toString('base64url') };
    }
    let htpasswdFile: string | undefined;
    if (auth === 'htpasswd' && users) {
      htpasswdFile = join(root, 'htpasswd');
      const lines = await Promise.all(Object.entries(users).map(([u, p]) => htpasswdLine(u, p)));
      await writeFile(htpasswdFile, lines.join('\n') + '\n', { mode: 0o600 });
    } else if (auth === 'token') {
      await mkdir(join(root, 'token'));
      token = await startTokenServer({ ...opts.tokenServer, users, dir: join(root, 'token') });
    }
    if (opts.tls) {
      await mkdir(join(root, 'tls'));
      tls = await generateTlsCerts({ dir: join(root, 'tls') });
    }
    const ca = tls ? await readFile(tls.caFile) : undefined;
    const configFile = join(root, 'config.yml');
    const secret = randomBytes(24).toString('hex');
    const timeoutMs = opts.startTimeoutMs ?? 15_000;

    let lastErr = '';
    for (let attempt = 0; attempt <= 3 && !running; attempt++) {
      const port = await freePort();
      const scheme = tls ? 'https' : 'http';
      await writeFile(
        configFile,
        renderConfig({
          dataDir,
          port,
          secret,
          deleteEnabled: opts.deleteEnabled ?? false,
          relativeUrls: opts.relativeUrls ?? false,
          tls,
          htpasswdFile,
          token,
        }),
      );
      const r = await launch(bin, configFile, `${scheme}://127.0.0.1:${port}`, port, ca, timeoutMs);
      if (r === 'EADDRINUSE') {
        lastErr = `port ${port} in use`;
        continue;
      }
      running = r;
    }
    if (!running) throw new Error(`docker-registry could not bind a free port after 4 attempts (${lastErr})`);

    const run = running;
    const host = `127.0.0.1:${run.port}`;
    const firstUser = users ? Object.entries(users)[0] : undefined;
    let stopping: Promise<void> | undefined;
    const handle: RegistryHandle = {
      host,
      url: `${tls ? 'https' : 'http'}://${host}`,
      dataDir,
      configFile,
      logs: run.logs,
      stop() {
        stopping ??= (async () => {
          killGroup(run.child, 'SIGTERM');
          const timer = setTimeout(() => killGroup(run.child, 'SIGKILL'), 2000);
          await run.exited;
          clearTimeout(timer);
          killGroup(run.child, 'SIGKILL'); // the watchdog subshell, if it outlived the wrapper
          await cleanupPartial();
        })();
        return stopping;
      },
    };
    if (tls) handle.caFile = tls.caFile;
    if (firstUser) {
      handle.username = firstUser[0];
      handle.password = firstUser[1];
    }
    if (token) {
      handle.tokenRealm = token.url;
      handle.tokenService = token.service;
      handle.tokenServer = token;
    }
    return handle;
  } catch (err) {
    await cleanupPartial();
    throw err;
  }
}
