// Remote-first paths against a real docker-registry: pull --extract-dir, --extract-from-remote, fetch (patterns and
// stdout), resume after a dropped connection and after SIGKILL, corrupt and hostile artifacts.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync, existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { runCli } from '../support/run-cli.js';
import { tmpDir, writeTree, listFiles } from '../support/tmp.js';
import { startRegistry, type RegistryHandle } from '../support/registry.js';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.js';
import { exitOf } from '../support/child.js';
import { createHash } from 'node:crypto';
import { LocalStore } from '../../src/content/local-store.js';
import { MT_OCI_MANIFEST } from '../../src/oci/media-types.js';

const ROOT = path.resolve(import.meta.dirname, '../../..');
const BIN = path.join(ROOT, 'bin/modctl');
const BIG = 8 * 1024 * 1024;
const FILES: Record<string, any> = {
  'config.json': '{"model_type":"llama"}',
  'model-00001-of-00002.safetensors': Buffer.alloc(BIG, 5).fill(6, BIG / 2),
  'model-00002-of-00002.safetensors': Buffer.alloc(200_000, 7),
  'tokenizer/tokenizer.json': '{"v":1}',
  'README.md': '# remote\n',
  'run.sh': { content: '#!/bin/sh\n', mode: 0o755 },
};
const MODELFILE = 'NAME remote\nCONFIG config.json\nCONFIG tokenizer/*.json\nMODEL *.safetensors\nCODE run.sh\nDOC README.md\n';

let reg: RegistryHandle;
let proxy: FaultProxy;
let ref: string; // through the proxy
// created at module level: tmpDir() registers its cleanup with the enclosing test context
const srcStore = tmpDir();
const ctx = tmpDir('modctl-ctx-');
before(async () => {
  reg = await startRegistry();
  proxy = await startFaultProxy(reg.url);
  writeTree(ctx, { ...FILES, Modelfile: MODELFILE });
  ref = `${proxy.host}/models/remote:v1`;
  let r = await cli(['--storage-dir', srcStore, 'build', '-t', ref, '-f', path.join(ctx, 'Modelfile'), ctx]);
  assert.equal(r.code, 0, r.stderr);
  r = await cli(['--storage-dir', srcStore, 'push', '--plain-http', ref]);
  assert.equal(r.code, 0, r.stderr);
});
after(async () => {
  await proxy?.stop();
  await reg?.stop();
});

function cli(args: string[], stdin?: string, env: NodeJS.ProcessEnv = {}) {
  return runCli(args, { env: { MODCTL_RETRY_BASE_MS: '5', ...env }, stdin });
}

/** Fault scenarios run on each receive path: undici on the main thread, the fetch workers, and those with O_DIRECT. */
const PATHS: Array<[string, NodeJS.ProcessEnv]> = [
  ['undici', { MODCTL_FAST_FETCH: '0' }],
  ['fetch workers', { MODCTL_FAST_FETCH_MIN: '1', MODCTL_DIRECT_IO: '0' }],
  ['fetch workers, O_DIRECT', { MODCTL_FAST_FETCH_MIN: '1', MODCTL_DIRECT_IO_MIN: '1' }],
];

function assertFiles(out: string, names: string[]) {
  for (const rel of names) {
    const v = FILES[rel];
    const want = typeof v === 'string' || Buffer.isBuffer(v) ? Buffer.from(v) : Buffer.from(v.content);
    assert.deepEqual(readFileSync(path.join(out, rel)), want, rel);
  }
}


test('pull --extract-dir pulls into the store and extracts an identical tree', async () => {
  const store = tmpDir();
  const out = path.join(tmpDir(), 'out');
  const r = await cli(['--storage-dir', store, 'pull', '--plain-http', ref, '--extract-dir', out]);
  assert.equal(r.code, 0, r.stderr);
  assertFiles(out, Object.keys(FILES));
  assert.equal(statSync(path.join(out, 'run.sh')).mode & 0o777, 0o755);
  assert.ok(listFiles(path.join(store, 'blobs')).length >= 7);
});

test('pull --extract-from-remote writes the tree and stores nothing locally', async () => {
  const store = tmpDir();
  const out = path.join(tmpDir(), 'out');
  const r = await cli(['--json', '--storage-dir', store, 'pull', '--plain-http', ref, '--extract-dir', out, '--extract-from-remote']);
  assert.equal(r.code, 0, r.stderr);
  assertFiles(out, Object.keys(FILES));
  assert.deepEqual(listFiles(path.join(store, 'blobs')), [], 'no blobs in the store');
  assert.deepEqual(listFiles(out), Object.keys(FILES).sort(), 'no temp or partial files left');
  // a second run keeps the identical files instead of downloading them again
  proxy.requests.length = 0;
  const again = await cli(['--json', '--storage-dir', store, 'pull', '--plain-http', ref, '--extract-dir', out, '--extract-from-remote']);
  assert.equal(again.code, 0, again.stderr);
  assert.ok(JSON.parse(again.stdout).files.every((f: any) => f.action === 'kept'));
  assert.equal(proxy.requests.filter((q) => q.method === 'GET' && q.path.includes('/blobs/')).length, 0);
});

test('--extract-from-remote without --extract-dir is a usage error', async () => {
  const r = await cli(['pull', '--plain-http', ref, '--extract-from-remote']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /needs --extract-dir/);
});

test('fetch downloads only matching files, each layer once; no match lists the paths', async () => {
  const out = path.join(tmpDir(), 'out');
  proxy.requests.length = 0;
  const r = await cli(['--json', 'fetch', '--plain-http', ref, '--output', out, '--patterns', '*.safetensors,model-00002*', '--patterns', 'tokenizer/**']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(listFiles(out), ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors', 'tokenizer/tokenizer.json']);
  assertFiles(out, ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors', 'tokenizer/tokenizer.json']);
  const blobGets = proxy.requests.filter((q) => q.method === 'GET' && q.path.includes('/blobs/sha256:'));
  assert.equal(blobGets.length, 3, 'a layer matched by two patterns is fetched once');

  const none = await cli(['fetch', '--plain-http', ref, '--output', out, '--patterns', '*.gguf']);
  assert.equal(none.code, 1);
  assert.match(none.stderr, /no layers matched "\*\.gguf"/);
  assert.match(none.stderr, /model-00001-of-00002\.safetensors/);
});

test('fetch --output - writes one file to stdout, verified', async () => {
  const r = await cli(['fetch', '--plain-http', ref, '--output', '-', '--patterns', 'model-00002*']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.stdoutBytes, FILES['model-00002-of-00002.safetensors']);
  const many = await cli(['fetch', '--plain-http', ref, '--output', '-', '--patterns', '*.safetensors']);
  assert.equal(many.code, 1);
  assert.match(many.stderr, /exactly one matching file; 2 matched/);
});

for (const [via, env] of PATHS)
test(`a connection reset mid-blob is resumed with Range and the result is identical (${via})`, async () => {
  const out = path.join(tmpDir(), 'out');
  proxy.requests.length = 0;
  proxy.setPlan({ match: { method: 'GET', path: /\/blobs\/sha256:/ }, times: 2, fault: { kind: 'reset-after', bytes: 1_000_000 } });
  try {
    const r = await cli(['fetch', '--plain-http', ref, '--output', out, '--patterns', 'model-00001*', '-c', '1'], undefined, env);
    assert.equal(r.code, 0, r.stderr);
  } finally {
    proxy.setPlan();
  }
  assertFiles(out, ['model-00001-of-00002.safetensors']);
  assert.ok(proxy.requests.some((q) => q.range?.startsWith('bytes=') && q.range !== 'bytes=0-'), 'a ranged request resumed the transfer');
});

for (const [via, env] of PATHS)
test(`5xx bursts and 429 with Retry-After are retried; the tree is identical (${via})`, async () => {
  const out = path.join(tmpDir(), 'out');
  proxy.setPlan([
    { match: { method: 'GET', path: /\/blobs\/sha256:/ }, times: 2, fault: { kind: 'status', status: 503 } },
    { match: { method: 'GET', path: /\/manifests\// }, times: 1, fault: { kind: 'status', status: 429, headers: { 'retry-after': '1' } } },
  ]);
  try {
    const r = await cli(['pull', '--plain-http', ref, '--extract-dir', out, '--extract-from-remote'], undefined, env);
    assert.equal(r.code, 0, r.stderr);
  } finally {
    proxy.setPlan();
  }
  assertFiles(out, Object.keys(FILES));
});

for (const [via, env] of PATHS)
test(`a blob whose bytes do not match its digest is rejected: nothing under a final name, no partial kept (${via})`, async () => {
  const out = path.join(tmpDir(), 'out');
  proxy.setPlan({ match: { method: 'GET', path: /\/blobs\/sha256:/ }, times: 100, fault: { kind: 'corrupt', atByte: 10 } });
  let r;
  try {
    r = await cli(['fetch', '--plain-http', ref, '--output', out, '--patterns', 'model-00002*'], undefined, env);
  } finally {
    proxy.setPlan();
  }
  assert.equal(r.code, 1);
  assert.match(r.stderr, /digest mismatch/);
  assert.deepEqual(listFiles(out), []);
  const store = tmpDir();
  proxy.setPlan({ match: { method: 'GET', path: /\/blobs\/sha256:/ }, times: 100, fault: { kind: 'corrupt', atByte: 10 } });
  try {
    r = await cli(['--storage-dir', store, 'pull', '--plain-http', ref], undefined, env);
  } finally {
    proxy.setPlan();
  }
  assert.equal(r.code, 1);
  const blobs = listFiles(path.join(store, 'blobs'));
  for (const b of blobs) {
    // only manifests/config may have landed; every stored blob must hash to its name
    const bytes = readFileSync(path.join(store, 'blobs', b));
    assert.equal(require_sha256(bytes), path.basename(b));
  }
});

function require_sha256(b: Buffer): string {
  return createHashHex(b);
}
function createHashHex(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

for (const [via, env] of PATHS)
test(`SIGKILL during pull --extract-from-remote, then a rerun resumes from the bytes on disk (${via})`, async () => {
  const out = path.join(tmpDir(), 'out');
  const target = path.join(out, 'model-00001-of-00002.safetensors');
  proxy.setPlan({ match: { method: 'GET', path: /\/blobs\/sha256:/ }, times: 100, fault: { kind: 'trickle', bytesPerSec: 2 * 1024 * 1024 } });
  const child = spawn(process.execPath, [BIN, 'fetch', '--plain-http', ref, '--output', out, '--patterns', 'model-00001*'], { stdio: 'ignore', env: { ...process.env, ...env } });
  let partial: string | undefined;
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    partial = existsSync(out) ? readdirSync(out).find((n) => n.includes('.modctl-partial-')) : undefined;
    if (partial && statSync(path.join(out, partial)).size > 1024 * 1024) break;
  }
  child.kill('SIGKILL');
  await exitOf(child);
  proxy.setPlan();
  assert.ok(partial, 'a partial file was being written');
  const have = statSync(path.join(out, partial!)).size;
  assert.ok(have > 0 && have < BIG);
  assert.ok(!existsSync(target), 'nothing under the final name');
  proxy.requests.length = 0;
  const r = await cli(['fetch', '--plain-http', ref, '--output', out, '--patterns', 'model-00001*'], undefined, env);
  assert.equal(r.code, 0, r.stderr);
  assertFiles(out, ['model-00001-of-00002.safetensors']);
  const get = proxy.requests.find((q) => q.method === 'GET' && q.path.includes('/blobs/sha256:'));
  assert.ok(get?.range && Number(/bytes=(\d+)-/.exec(get.range)?.[1]) >= have - 1, `resumed with a Range from ${have}: ${get?.range}`);
  assert.deepEqual(listFiles(out), ['model-00001-of-00002.safetensors'], 'the partial file is gone');
});

for (const [via, env] of PATHS)
test(`SIGINT stops a transfer promptly with exit 130 and keeps the partial file for the next run (${via})`, async () => {
  const out = path.join(tmpDir(), 'out');
  proxy.setPlan({ match: { method: 'GET', path: /\/blobs\/sha256:/ }, times: 100, fault: { kind: 'trickle', bytesPerSec: 1024 * 1024 } });
  const child = spawn(process.execPath, [BIN, 'fetch', '--plain-http', ref, '--output', out, '--patterns', 'model-00001*'], { stdio: 'ignore', env: { ...process.env, ...env } });
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    const p = existsSync(out) ? readdirSync(out).find((n) => n.includes('.modctl-partial-')) : undefined;
    if (p && statSync(path.join(out, p)).size > 0) break;
  }
  const t0 = Date.now();
  child.kill('SIGINT');
  const code = await exitOf(child);
  proxy.setPlan();
  assert.equal(code, 130);
  assert.ok(Date.now() - t0 < 5000, 'stopped promptly');
  assert.ok(readdirSync(out).some((n) => n.includes('.modctl-partial-')), 'partial kept for resume');
  assert.ok(!existsSync(path.join(out, 'model-00001-of-00002.safetensors')));
});

test('a hostile artifact (filepath escaping the output dir) is refused before anything is written outside', async () => {
  const store = await LocalStore.open(tmpDir());
  const good = await LocalStore.open(srcStore);
  const t = await good.resolve(ref);
  const m = JSON.parse((await good.readBlob(t.descriptor.digest)).toString());
  const small = m.layers.find((l: any) => l.annotations['org.cncf.model.filepath'] === 'README.md');
  for (const d of [m.config, small]) await store.putBytes(await good.readBlob(d.digest));
  const evil = { ...m, layers: [{ ...small, annotations: { ...small.annotations, 'org.cncf.model.filepath': '../../escaped.md', 'org.opencontainers.image.title': '../../escaped.md' } }] };
  const bytes = Buffer.from(JSON.stringify(evil));
  const put = await store.putBytes(bytes);
  const evilRef = `${proxy.host}/models/evil:v1`;
  await store.tag(evilRef, { mediaType: MT_OCI_MANIFEST, digest: put.digest, size: put.size });
  let r = await cli(['--storage-dir', store.root, 'push', '--plain-http', evilRef]);
  assert.equal(r.code, 0, r.stderr);
  const parent = tmpDir('modctl-parent-');
  const out = path.join(parent, 'a', 'out');
  r = await cli(['--storage-dir', tmpDir(), 'pull', '--plain-http', evilRef, '--extract-dir', out, '--extract-from-remote']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /unsafe path/);
  assert.deepEqual(listFiles(parent), [], 'nothing written anywhere');
});

test('a directory (tar) layer killed mid-download resumes from its staged bytes and unpacks identically', async () => {
  const dirCtx = tmpDir('modctl-ctx-');
  const tree: Record<string, Buffer | string> = {
    'data/a.bin': Buffer.alloc(3 * 1024 * 1024, 1).fill(9, 12345, 99999),
    'data/b.bin': Buffer.alloc(3 * 1024 * 1024, 2),
    'data/sub/c.txt': 'hello\n',
  };
  writeTree(dirCtx, { ...tree, 'config.json': '{}', Modelfile: 'NAME dirs\nCONFIG config.json\nDATASET data\n' });
  const dref = `${proxy.host}/models/dirs:v1`;
  const store = tmpDir();
  let r = await cli(['--storage-dir', store, 'build', '-t', dref, '-f', path.join(dirCtx, 'Modelfile'), dirCtx]);
  assert.equal(r.code, 0, r.stderr);
  r = await cli(['--storage-dir', store, 'push', '--plain-http', dref]);
  assert.equal(r.code, 0, r.stderr);

  const env = { MODCTL_FAST_FETCH_MIN: '1' };
  const out = path.join(tmpDir(), 'out');
  proxy.setPlan({ match: { method: 'GET', path: /\/blobs\/sha256:/ }, times: 100, fault: { kind: 'trickle', bytesPerSec: 2 * 1024 * 1024 } });
  const child = spawn(process.execPath, [BIN, 'pull', '--plain-http', dref, '--extract-dir', out, '--extract-from-remote', '--storage-dir', tmpDir()], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, ...env },
  });
  let childErr = '';
  child.stderr!.on('data', (c) => (childErr += c));
  let staged: string | undefined;
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    await new Promise((res) => setTimeout(res, 100));
    staged = existsSync(out) ? readdirSync(out).find((n) => n.startsWith('.modctl-partial-layer-')) : undefined;
    if (staged && statSync(path.join(out, staged)).size > 1024 * 1024) break;
  }
  child.kill('SIGKILL');
  await exitOf(child);
  proxy.setPlan();
  assert.ok(staged, `the layer was being staged (child stderr: ${childErr})`);
  const have = statSync(path.join(out, staged!)).size;
  assert.ok(existsSync(out) && !existsSync(path.join(out, 'data/a.bin')), 'nothing unpacked yet');

  proxy.requests.length = 0;
  r = await cli(['pull', '--plain-http', dref, '--extract-dir', out, '--extract-from-remote', '--storage-dir', tmpDir()], undefined, env);
  assert.equal(r.code, 0, r.stderr);
  const get = proxy.requests.find((q) => q.method === 'GET' && q.path.includes('/blobs/sha256:') && q.range);
  assert.ok(get?.range && Number(/bytes=(\d+)-/.exec(get.range)?.[1]) >= have - 4096, `resumed with a Range near ${have}: ${get?.range}`);
  for (const [rel, v] of Object.entries(tree)) assert.deepEqual(readFileSync(path.join(out, rel)), Buffer.from(v), rel);
  assert.deepEqual(listFiles(out).sort(), ['config.json', 'data/a.bin', 'data/b.bin', 'data/sub/c.txt'], 'the staged layer is gone');
});
