// Push/pull against a real docker-registry (distribution 2.8.2) started on 127.0.0.1: no auth, htpasswd Basic auth,
// token auth (ES256 JWT with x5c) and TLS; interop both ways with skopeo.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { readFileSync, readdirSync, existsSync, writeFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { runCli } from '../support/run-cli.js';
import { tmpDir, writeTree } from '../support/tmp.js';
import { startRegistry, type RegistryHandle } from '../support/registry.js';

const execFileP = promisify(execFile);
const FILES = {
  'config.json': '{"model_type":"llama"}',
  'model-00001-of-00002.safetensors': Buffer.alloc(300_000, 3),
  'model-00002-of-00002.safetensors': Buffer.alloc(5 * 1024 * 1024 + 17, 4), // above the monolithic-PUT threshold
  'scripts/run.sh': { content: '#!/bin/sh\necho hi\n', mode: 0o755 },
  'README.md': '# demo\n',
};
const MODELFILE = 'NAME demo\nCONFIG config.json\nMODEL *.safetensors\nCODE scripts/run.sh\nDOC README.md\n';

const registries: RegistryHandle[] = [];
after(async () => {
  await Promise.all(registries.map((r) => r.stop()));
});
async function registry(opts: Parameters<typeof startRegistry>[0] = {}): Promise<RegistryHandle> {
  const r = await startRegistry(opts);
  registries.push(r);
  return r;
}

function modelDir(files: Record<string, any> = FILES): string {
  const dir = tmpDir('modctl-ctx-');
  writeTree(dir, { ...files, Modelfile: MODELFILE });
  return dir;
}

async function cli(args: string[], env: NodeJS.ProcessEnv = {}, stdin?: string) {
  return runCli(args, { env: { MODCTL_RETRY_BASE_MS: '5', ...env }, stdin });
}

/** Every blob, however small, through the fetch worker threads (and O_DIRECT where the file system takes it). */
const VIA_WORKERS = { MODCTL_FAST_FETCH_MIN: '1', MODCTL_DIRECT_IO_MIN: '1' };

/** Pull `ref` straight into a directory through the fetch workers and check the tree against `ctx`. */
async function pullTreeViaWorkers(ref: string, ctx: string, args: string[], env: NodeJS.ProcessEnv = {}) {
  const out = path.join(tmpDir(), 'out');
  const r = await cli(['--storage-dir', tmpDir(), 'pull', ...args, ref, '--extract-dir', out, '--extract-from-remote'], { ...env, ...VIA_WORKERS });
  assert.equal(r.code, 0, r.stderr);
  assertTreeEqual(ctx, out, FILES);
}

async function buildTo(store: string, ctx: string, ref: string) {
  const r = await cli(['--storage-dir', store, 'build', '-t', ref, '-f', path.join(ctx, 'Modelfile'), ctx]);
  assert.equal(r.code, 0, r.stderr);
}

function assertTreeEqual(a: string, b: string, files: Record<string, any>) {
  for (const [rel, v] of Object.entries(files)) {
    const want = typeof v === 'string' || Buffer.isBuffer(v) ? Buffer.from(v) : Buffer.from(v.content);
    assert.deepEqual(readFileSync(path.join(b, rel)), want, rel);
    assert.equal(statSync(path.join(b, rel)).mode & 0o777, statSync(path.join(a, rel)).mode & 0o777, `${rel} mode`);
  }
}

test('push, pull into a fresh store, extract: identical tree (plain http registry)', async () => {
  const reg = await registry();
  const ctx = modelDir();
  const s1 = tmpDir();
  const ref = `${reg.host}/models/demo:v1`;
  await buildTo(s1, ctx, ref);
  let r = await cli(['--json', '--storage-dir', s1, 'push', '--plain-http', ref]);
  assert.equal(r.code, 0, r.stderr);
  const pushed = JSON.parse(r.stdout);
  assert.equal(pushed.blobsPushed, 6); // 5 layers + config
  // re-push of the unchanged artifact uploads nothing
  r = await cli(['--json', '--storage-dir', s1, 'push', '--plain-http', ref]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).bytesUploaded, 0);

  const s2 = tmpDir();
  r = await cli(['--json', '--storage-dir', s2, 'pull', '--plain-http', ref]);
  assert.equal(r.code, 0, r.stderr);
  const pulled = JSON.parse(r.stdout);
  assert.equal(pulled.digest, pushed.digest);
  const out = path.join(tmpDir(), 'out');
  r = await cli(['--storage-dir', s2, 'extract', ref, '--output', out]);
  assert.equal(r.code, 0, r.stderr);
  assertTreeEqual(ctx, out, FILES);

  // inspect --remote reads manifest and config without layers
  r = await cli(['--json', '--storage-dir', tmpDir(), 'inspect', '--remote', '--plain-http', ref]);
  assert.equal(r.code, 0, r.stderr);
  const s = JSON.parse(r.stdout);
  assert.equal(s.Digest, pushed.digest);
  assert.equal(s.Name, 'demo');
  assert.equal(s.Layers.length, 5);
});

test('push re-points a tag that pointed at another digest', async () => {
  const reg = await registry();
  const store = tmpDir();
  const ref = `${reg.host}/models/retag:v1`;
  await buildTo(store, modelDir(), ref);
  assert.equal((await cli(['--storage-dir', store, 'push', '--plain-http', ref])).code, 0);
  const changed = { ...FILES, 'README.md': '# changed\n' };
  await buildTo(store, modelDir(changed), ref);
  const r = await cli(['--json', '--storage-dir', store, 'push', '--plain-http', ref]);
  assert.equal(r.code, 0, r.stderr);
  const newDigest = JSON.parse(r.stdout).digest;
  const remote = await cli(['--json', '--storage-dir', store, 'inspect', '--remote', '--plain-http', ref]);
  assert.equal(JSON.parse(remote.stdout).Digest, newDigest);
});

test('htpasswd registry: login checks credentials, saves them 0600, push/pull use them, logout removes them', async () => {
  const reg = await registry({ auth: 'htpasswd' });
  const dockerConfig = tmpDir('modctl-docker-');
  const env = { DOCKER_CONFIG: dockerConfig };
  const store = tmpDir();
  const ref = `${reg.host}/models/auth:v1`;
  const ctx = modelDir();
  await buildTo(store, ctx, ref);

  let r = await cli(['--storage-dir', store, 'push', '--plain-http', ref], env);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /401|unauthorized|credentials/i);

  r = await cli(['login', '--plain-http', reg.host, '-u', reg.username!, '--password-stdin'], env, 'wrong-password\n');
  assert.equal(r.code, 1);
  assert.ok(!existsSync(path.join(dockerConfig, 'config.json')), 'nothing saved after a failed login');
  assert.doesNotMatch(r.stderr, /wrong-password/);

  r = await cli(['login', '--plain-http', reg.host, '-u', reg.username!, '--password-stdin'], env, reg.password + '\n');
  assert.equal(r.code, 0, r.stderr);
  const cfgPath = path.join(dockerConfig, 'config.json');
  assert.equal(statSync(cfgPath).mode & 0o777, 0o600);
  const cfg = JSON.parse(readFileSync(cfgPath, 'utf8'));
  assert.equal(Buffer.from(cfg.auths[reg.host].auth, 'base64').toString(), `${reg.username}:${reg.password}`);

  r = await cli(['--storage-dir', store, 'push', '--plain-http', ref], env);
  assert.equal(r.code, 0, r.stderr);
  r = await cli(['--storage-dir', tmpDir(), 'pull', '--plain-http', ref], env);
  assert.equal(r.code, 0, r.stderr);
  await pullTreeViaWorkers(ref, ctx, ['--plain-http'], env);
  // build --output-remote sends its big file through the fetch workers' send path, with the saved credentials
  const built = `${reg.host}/models/auth-built:v1`;
  r = await cli(['--storage-dir', tmpDir(), 'build', '--output-remote', '--plain-http', '-t', built, '-f', path.join(ctx, 'Modelfile'), ctx], { ...env, ...VIA_WORKERS });
  assert.equal(r.code, 0, r.stderr);
  await pullTreeViaWorkers(built, ctx, ['--plain-http'], env);

  r = await cli(['logout', reg.host], env);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(readFileSync(cfgPath, 'utf8')).auths?.[reg.host], undefined);

  // like modctl, a password piped to login is read without --password-stdin
  r = await cli(['login', '--plain-http', reg.host, '-u', reg.username!], env, reg.password + '\n');
  assert.equal(r.code, 0, r.stderr);
  assert.ok(JSON.parse(readFileSync(cfgPath, 'utf8')).auths?.[reg.host]);
});

test('token-auth registry (ES256 JWT): push and pull with saved credentials; anonymous pull is refused', async () => {
  const reg = await registry({ auth: 'token' });
  const dockerConfig = tmpDir('modctl-docker-');
  writeFileSync(
    path.join(dockerConfig, 'config.json'),
    JSON.stringify({ auths: { [reg.host]: { auth: Buffer.from(`${reg.username}:${reg.password}`).toString('base64') } } }),
  );
  const env = { DOCKER_CONFIG: dockerConfig };
  const store = tmpDir();
  const ref = `${reg.host}/models/tok:v1`;
  const ctx = modelDir();
  await buildTo(store, ctx, ref);
  let r = await cli(['--storage-dir', store, 'push', '--plain-http', ref], env);
  assert.equal(r.code, 0, r.stderr);
  r = await cli(['--json', '--storage-dir', tmpDir(), 'pull', '--plain-http', ref], env);
  assert.equal(r.code, 0, r.stderr);
  await pullTreeViaWorkers(ref, ctx, ['--plain-http'], env);
  const built = `${reg.host}/models/tok-built:v1`;
  r = await cli(['--storage-dir', tmpDir(), 'build', '--output-remote', '--plain-http', '-t', built, '-f', path.join(ctx, 'Modelfile'), ctx], { ...env, ...VIA_WORKERS });
  assert.equal(r.code, 0, r.stderr);
  await pullTreeViaWorkers(built, ctx, ['--plain-http'], env);
  r = await cli(['--storage-dir', tmpDir(), 'push', '--plain-http', ref], { DOCKER_CONFIG: tmpDir() });
  assert.equal(r.code, 1, 'anonymous push must fail');
});

test('TLS registry: --ca-file trusts it, no CA fails clearly, --insecure skips verification', async () => {
  const reg = await registry({ tls: true });
  const store = tmpDir();
  const ref = `${reg.host}/models/tls:v1`;
  const ctx = modelDir();
  await buildTo(store, ctx, ref);
  let r = await cli(['--storage-dir', store, 'push', ref]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /certificate|TLS|self.signed/i);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
  r = await cli(['--storage-dir', store, 'push', '--ca-file', reg.caFile!, ref]);
  assert.equal(r.code, 0, r.stderr);
  r = await cli(['--storage-dir', tmpDir(), 'pull', '--insecure', ref]);
  assert.equal(r.code, 0, r.stderr);
  await pullTreeViaWorkers(ref, ctx, ['--ca-file', reg.caFile!]);
  await pullTreeViaWorkers(ref, ctx, ['--insecure']);
  const built = `${reg.host}/models/tls-built:v1`;
  r = await cli(['--storage-dir', tmpDir(), 'build', '--output-remote', '--ca-file', reg.caFile!, '-t', built, '-f', path.join(ctx, 'Modelfile'), ctx], VIA_WORKERS);
  assert.equal(r.code, 0, r.stderr);
  await pullTreeViaWorkers(built, ctx, ['--ca-file', reg.caFile!]);
});

test('skopeo interop: what modctl pushes, skopeo copies byte-identically; what skopeo pushes, modctl pulls and extracts', async () => {
  const reg = await registry();
  const store = tmpDir();
  const ref = `${reg.host}/models/interop:v1`;
  const ctx = modelDir();
  await buildTo(store, ctx, ref);
  const r = await cli(['--json', '--storage-dir', store, 'push', '--plain-http', ref]);
  assert.equal(r.code, 0, r.stderr);
  const digest = JSON.parse(r.stdout).digest;

  const layout = path.join(tmpDir('modctl-skopeo-'), 'oci');
  await execFileP('skopeo', ['copy', '--src-tls-verify=false', `docker://${ref}`, `oci:${layout}:copied`]);
  const idx = JSON.parse(readFileSync(path.join(layout, 'index.json'), 'utf8'));
  assert.equal(idx.manifests[0].digest, digest, 'skopeo sees the same manifest digest');
  for (const name of readdirSync(path.join(layout, 'blobs/sha256'))) {
    assert.deepEqual(readFileSync(path.join(layout, 'blobs/sha256', name)), readFileSync(path.join(store, 'blobs/sha256', name)), name);
  }

  // the other way: skopeo copies modctl's OCI layout into the registry under a new name; modctl pulls it
  const ref2 = `${reg.host}/other/copied:v2`;
  await execFileP('skopeo', ['copy', '--dest-tls-verify=false', `oci:${store}:${ref}`, `docker://${ref2}`]);
  const s2 = tmpDir();
  const p = await cli(['--json', '--storage-dir', s2, 'pull', '--plain-http', ref2]);
  assert.equal(p.code, 0, p.stderr);
  assert.equal(JSON.parse(p.stdout).digest, digest);
  const out = path.join(tmpDir(), 'out');
  const e = await cli(['--storage-dir', s2, 'extract', ref2, '--output', out]);
  assert.equal(e.code, 0, e.stderr);
  assertTreeEqual(ctx, out, FILES);
});
