/**
 * Docker credential storage (registry-client.md §11): `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`
 * (HOME taken from the caller's env), with `credHelpers[registry]` → `credsStore` → `auths` precedence, and the
 * `docker-credential-<name>` helper protocol over child processes spawned with the caller's env (so PATH comes from
 * opts.env). A helper miss means anonymous, not a fall-through to `auths`. Secrets never appear in messages.
 */
import { spawn } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ModctlError } from '../../errors.js';
import { writeFileAtomic } from '../../util/fs.js';
import { redactText } from '../redact.js';

export interface Credentials {
  username?: string;
  password?: string;
  /** OAuth2 refresh token (`identitytoken`, or a helper answer with Username `<token>`). */
  identityToken?: string;
  /** Ready-made Bearer token (`registrytoken`). */
  registryToken?: string;
}

interface AuthEntry {
  auth?: string;
  username?: string;
  password?: string;
  identitytoken?: string;
  registrytoken?: string;
  email?: string;
  [k: string]: unknown;
}

export interface DockerConfig {
  auths?: Record<string, AuthEntry>;
  credHelpers?: Record<string, string>;
  credsStore?: string;
  [k: string]: unknown;
}

export const DOCKER_HUB_SERVER = 'https://index.docker.io/v1/';
const HUB_ALIASES = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io', 'registry.hub.docker.com']);
/** Helpers can prompt or hang (keychains); give up rather than block forever. */
const HELPER_TIMEOUT_MS = 30_000;
/** Helper output is a small JSON document; cap what we buffer. */
const HELPER_MAX_OUTPUT = 1024 * 1024;

export function dockerConfigDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.DOCKER_CONFIG) return env.DOCKER_CONFIG;
  return path.join(env.HOME || os.homedir(), '.docker');
}

export function dockerConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(dockerConfigDir(env), 'config.json');
}

/**
 * Canonical registry key: scheme and path stripped, lower-cased, Docker Hub aliases folded into `docker.io`.
 * `https://index.docker.io/v1/`, `index.docker.io`, `registry-1.docker.io` and `docker.io` are all `docker.io`.
 */
export function normalizeRegistryKey(key: string): string {
  let k = key.trim().toLowerCase();
  k = k.replace(/^[a-z][a-z0-9+.-]*:\/\//, '');
  const slash = k.indexOf('/');
  if (slash >= 0) k = k.slice(0, slash);
  if (HUB_ALIASES.has(k)) return 'docker.io';
  return k;
}

/** The server URL Docker uses as the key (and helper argument) for a registry. */
export function credentialServerUrl(registry: string): string {
  const k = normalizeRegistryKey(registry);
  return k === 'docker.io' ? DOCKER_HUB_SERVER : k;
}

export async function readDockerConfig(env: NodeJS.ProcessEnv = process.env): Promise<{ path: string; config: DockerConfig; exists: boolean }> {
  const p = dockerConfigPath(env);
  let raw: string;
  try {
    raw = await fsp.readFile(p, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { path: p, config: {}, exists: false };
    throw new ModctlError('E_CONFIG', `cannot read ${p}: ${(e as Error).message}`, { cause: e });
  }
  if (!raw.trim()) return { path: p, config: {}, exists: true };
  try {
    const json = JSON.parse(raw);
    if (!json || typeof json !== 'object' || Array.isArray(json)) throw new Error('not a JSON object');
    return { path: p, config: json as DockerConfig, exists: true };
  } catch (e) {
    throw new ModctlError('E_CONFIG', `${p} is not valid JSON: ${(e as Error).message}`, {
      hint: 'fix or remove the file (it is Docker\'s credential configuration)',
      cause: e,
    });
  }
}

function findKey<T>(map: Record<string, T> | undefined, registry: string): string | undefined {
  if (!map) return undefined;
  const want = normalizeRegistryKey(registry);
  const exact = credentialServerUrl(registry);
  if (Object.prototype.hasOwnProperty.call(map, exact)) return exact;
  return Object.keys(map).find((k) => normalizeRegistryKey(k) === want);
}

/** The helper configured for a registry: credHelpers entry, else credsStore. */
export function helperFor(config: DockerConfig, registry: string): string | undefined {
  const k = findKey(config.credHelpers, registry);
  const h = k ? config.credHelpers![k] : undefined;
  if (h) return h;
  return config.credsStore || undefined;
}

export function decodeAuthEntry(entry: AuthEntry | undefined): Credentials | undefined {
  if (!entry || typeof entry !== 'object') return undefined;
  const c: Credentials = {};
  if (typeof entry.auth === 'string' && entry.auth) {
    const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
    const i = decoded.indexOf(':');
    if (i > 0) {
      c.username = decoded.slice(0, i);
      c.password = decoded.slice(i + 1).replace(/\0+$/, '');
    }
  }
  if (!c.username && typeof entry.username === 'string' && entry.username) c.username = entry.username;
  if (!c.password && typeof entry.password === 'string' && entry.password) c.password = entry.password;
  if (typeof entry.identitytoken === 'string' && entry.identitytoken) c.identityToken = entry.identitytoken;
  if (typeof entry.registrytoken === 'string' && entry.registrytoken) c.registryToken = entry.registrytoken;
  if (!c.username && !c.password && !c.identityToken && !c.registryToken) return undefined;
  return c;
}

/**
 * Credentials for a registry, or undefined for anonymous access. `DOCKER_AUTH_CONFIG` (the whole config as JSON)
 * takes precedence over the file, as in recent Docker CLIs.
 */
export async function getCredentials(registry: string, env: NodeJS.ProcessEnv = process.env): Promise<Credentials | undefined> {
  let config: DockerConfig;
  if (env.DOCKER_AUTH_CONFIG) {
    try {
      config = JSON.parse(env.DOCKER_AUTH_CONFIG) as DockerConfig;
    } catch (e) {
      throw new ModctlError('E_CONFIG', 'DOCKER_AUTH_CONFIG is not valid JSON', { cause: e });
    }
  } else {
    config = (await readDockerConfig(env)).config;
  }
  const helper = helperFor(config, registry);
  if (helper) return helperGet(helper, credentialServerUrl(registry), env);
  const k = findKey(config.auths, registry);
  return k ? decodeAuthEntry(config.auths![k]) : undefined;
}

async function helperGet(helper: string, serverUrl: string, env: NodeJS.ProcessEnv): Promise<Credentials | undefined> {
  const r = await runCredentialHelper(helper, 'get', serverUrl, env);
  if (r.code !== 0) {
    if (isNotFound(r.stdout)) return undefined;
    throw helperError(helper, 'get', r);
  }
  let json: any;
  try {
    json = JSON.parse(r.stdout);
  } catch {
    // never echo the output: it may hold the secret
    throw new ModctlError('E_CREDENTIALS', `credential helper docker-credential-${helper} returned malformed output`);
  }
  const username = typeof json?.Username === 'string' ? json.Username : '';
  const secret = typeof json?.Secret === 'string' ? json.Secret : '';
  if (!secret && !username) return undefined;
  if (username === '<token>') return { identityToken: secret };
  return { username, password: secret };
}

function isNotFound(out: string): boolean {
  return /credentials not found/i.test(out);
}

export interface HelperResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Run `docker-credential-<helper> <action>` with `input` on stdin. The command is looked up on `env.PATH`.
 * Output is capped; the process is killed after 30 s.
 */
export function runCredentialHelper(helper: string, action: 'get' | 'store' | 'erase' | 'list', input: string, env: NodeJS.ProcessEnv): Promise<HelperResult> {
  if (!/^[A-Za-z0-9._-]+$/.test(helper)) {
    return Promise.reject(new ModctlError('E_CREDENTIALS', `invalid credential helper name ${JSON.stringify(helper)} in the Docker config`));
  }
  const cmd = `docker-credential-${helper}`;
  return new Promise((resolve, reject) => {
    let child;
    try {
      // Our own timer rather than spawn's `timeout`: Node leaves that one armed when the spawn fails (ENOENT).
      child = spawn(cmd, [action], { env, stdio: ['pipe', 'pipe', 'pipe'], windowsHide: true });
    } catch (e) {
      reject(helperSpawnError(cmd, e));
      return;
    }
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGTERM');
    }, HELPER_TIMEOUT_MS);
    timer.unref();
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let outLen = 0;
    let errLen = 0;
    child.stdout.on('data', (b: Buffer) => {
      if (outLen < HELPER_MAX_OUTPUT) out.push(b);
      outLen += b.length;
    });
    child.stderr.on('data', (b: Buffer) => {
      if (errLen < 64 * 1024) err.push(b);
      errLen += b.length;
    });
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(helperSpawnError(cmd, e));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (signal) {
        reject(new ModctlError('E_CREDENTIALS', `${cmd} ${action} was killed (${signal})${timedOut ? ' after a 30 s timeout' : ''}`));
        return;
      }
      resolve({ code: code ?? 1, stdout: Buffer.concat(out).toString('utf8').trim(), stderr: Buffer.concat(err).toString('utf8').trim() });
    });
    child.stdin.on('error', () => {
      /* helper exited without reading stdin; its exit code tells the story */
    });
    child.stdin.end(input);
  });
}

function helperSpawnError(cmd: string, e: unknown): ModctlError {
  const code = (e as NodeJS.ErrnoException)?.code;
  if (code === 'ENOENT') {
    return new ModctlError('E_CREDENTIALS', `credential helper ${cmd} is not installed (not found on PATH)`, {
      hint: 'install it, or remove "credsStore"/"credHelpers" from your Docker config.json',
      cause: e,
    });
  }
  return new ModctlError('E_CREDENTIALS', `cannot run credential helper ${cmd}: ${(e as Error)?.message ?? e}`, { cause: e });
}

function helperError(helper: string, action: string, r: HelperResult, secrets: string[] = []): ModctlError {
  // Helpers print their failure on stdout; for `get` a success would hold the secret, but this is the failure path.
  const msg = redactText((r.stdout || r.stderr || `exit code ${r.code}`).split('\n')[0].slice(0, 300), secrets);
  return new ModctlError('E_CREDENTIALS', `docker-credential-${helper} ${action} failed: ${msg}`);
}

export interface SaveResult {
  stored: 'helper' | 'config';
  configPath: string;
}

/**
 * Save credentials: through the configured helper when there is one, else as base64 `auth` in `auths` (file mode
 * 0600, directory 0700). Other config content is preserved; duplicate keys for the same registry are removed.
 */
export async function saveCredentials(registry: string, username: string, password: string, env: NodeJS.ProcessEnv = process.env): Promise<SaveResult> {
  const { path: configPath, config } = await readDockerConfig(env);
  const server = credentialServerUrl(registry);
  const helper = helperFor(config, registry);
  if (helper) {
    const r = await runCredentialHelper(helper, 'store', JSON.stringify({ ServerURL: server, Username: username, Secret: password }), env);
    if (r.code !== 0) throw helperError(helper, 'store', r, [password]);
    return { stored: 'helper', configPath };
  }
  const auths: Record<string, AuthEntry> = { ...(config.auths ?? {}) };
  for (const k of Object.keys(auths)) if (normalizeRegistryKey(k) === normalizeRegistryKey(registry)) delete auths[k];
  auths[server] = { auth: Buffer.from(`${username}:${password}`, 'utf8').toString('base64') };
  await writeConfig(configPath, { ...config, auths });
  return { stored: 'config', configPath };
}

/** Remove credentials from the helper and from `auths`; `removed` says whether anything was there. */
export async function eraseCredentials(registry: string, env: NodeJS.ProcessEnv = process.env): Promise<{ removed: boolean; configPath: string }> {
  const { path: configPath, config, exists } = await readDockerConfig(env);
  let removed = false;
  const helper = helperFor(config, registry);
  if (helper) {
    const r = await runCredentialHelper(helper, 'erase', credentialServerUrl(registry), env);
    if (r.code === 0) removed = true;
    else if (!isNotFound(r.stdout)) throw helperError(helper, 'erase', r);
  }
  if (exists && config.auths) {
    const auths = { ...config.auths };
    let changed = false;
    for (const k of Object.keys(auths)) {
      if (normalizeRegistryKey(k) === normalizeRegistryKey(registry)) {
        if (decodeAuthEntry(auths[k])) removed = true;
        delete auths[k];
        changed = true;
      }
    }
    if (changed) await writeConfig(configPath, { ...config, auths });
  }
  return { removed, configPath };
}

async function writeConfig(file: string, config: DockerConfig): Promise<void> {
  const dir = path.dirname(file);
  await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
  await writeFileAtomic(file, JSON.stringify(config, null, '\t') + '\n', 0o600);
}
