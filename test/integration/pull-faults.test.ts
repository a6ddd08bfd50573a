// Pull into the local store through a fault-injecting proxy in front of a real docker-registry: truncated bodies,
// resets, corrupt bytes, and a pull killed with SIGKILL that resumes from its partial file.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { runCli } from '../support/run-cli.js';
import { tmpDir, writeTree } from '../support/tmp.js';
import { startRegistry, type RegistryHandle } from '../support/registry.js';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.js';
import { exitOf } from '../support/child.js';

const BIN = path.resolve(import.meta.dirname, '../../../bin/modctl');
const BIG = 6 * 1024 * 1024;
const big = Buffer.alloc(BIG, 1).fill(2, 1000, 5000).fill(3, BIG - 100);
const bigDigest = 'sha256:' + createHash('sha256').update(big).digest('hex');
const ctx = tmpDir('modctl-ctx-');
const srcStore = tmpDir();
let reg: RegistryHandle;
let proxy: FaultProxy;
let ref: string;

before(async () => {
  reg = await startRegistry();
  proxy = await startFaultProxy(reg.url);
  writeTree(ctx, { 'weights.bin': big, 'config.json': '{}', Modelfile: 'CONFIG config.json\nMODEL weights.bin\n' });
  ref = `${proxy.host}/pull/faults:v1`;
  let r = await cli(['--storage-dir', srcStore, 'build', '-t', ref, '-f', path.join(ctx, 'Modelfile'), ctx]);
  assert.equal(r.code, 0, r.stderr);
  r = await cli(['--storage-dir', srcStore, 'push', '--plain-http', ref]);
  assert.equal(r.code, 0, r.stderr);
});
after(async () => {
  await proxy?.stop();
  await reg?.stop();
});

function cli(args: string[], env: NodeJS.ProcessEnv = {}) {
  return runCli(args, { env: { MODCTL_RETRY_BASE_MS: '5', ...env } });
}

function storedBlob(store: string): Buffer {
  return readFileSync(path.join(store, 'blobs', 'sha256', bigDigest.slice(7)));
}

function assertStoreClean(store: string) {
  for (const name of existsSync(path.join(store, 'blobs/sha256')) ? readdirSync(path.join(store, 'blobs/sha256')) : []) {
    const b = readFileSync(path.join(store, 'blobs/sha256', name));
    assert.equal(createHash('sha256').update(b).digest('hex'), name, 'every stored blob matches its name');
  }
}

/** Each scenario on each receive path: undici on the main thread, the fetch workers, and the workers with O_DIRECT. */
const PATHS: Array<[string, NodeJS.ProcessEnv]> = [
  ['undici', { MODCTL_FAST_FETCH: '0' }],
  ['fetch workers', { MODCTL_FAST_FETCH_MIN: '1', MODCTL_DIRECT_IO: '0' }],
  ['fetch workers, O_DIRECT', { MODCTL_FAST_FETCH_MIN: '1', MODCTL_DIRECT_IO_MIN: '1' }],
];
for (const [mode, env] of PATHS)
for (const fault of [
  { kind: 'truncate-after', bytes: 2_000_000 },
  { kind: 'reset-after', bytes: 3_000_000 },
] as const) {
  test(`pull survives a ${fault.kind} in the middle of a blob and stores verified content (${mode})`, async () => {
    const store = tmpDir();
    proxy.requests.length = 0;
    proxy.setPlan({ match: { method: 'GET', path: /\/blobs\/sha256:/ }, times: 1, fault });
    try {
      const r = await cli(['--storage-dir', store, 'pull', '--plain-http', ref], env);
      assert.equal(r.code, 0, r.stderr);
    } finally {
      proxy.setPlan();
    }
    assert.ok(proxy.requests.some((q) => q.fault === fault.kind), 'fault injected');
    assert.deepEqual(storedBlob(store), big);
    assertStoreClean(store);
  });
}

for (const [mode, env] of PATHS)
test(`pull rejects a blob whose bytes do not match its digest: never stored, no partial kept (${mode})`, async () => {
  const store = tmpDir();
  proxy.setPlan({ match: { method: 'GET', path: new RegExp(bigDigest) }, times: 100, fault: { kind: 'corrupt', atByte: 4242 } });
  let r;
  try {
    r = await cli(['--storage-dir', store, 'pull', '--plain-http', ref], env);
  } finally {
    proxy.setPlan();
  }
  assert.equal(r.code, 1);
  assert.match(r.stderr, /digest mismatch/i);
  assert.ok(!existsSync(path.join(store, 'blobs/sha256', bigDigest.slice(7))));
  assertStoreClean(store);
  const idx = JSON.parse(readFileSync(path.join(store, 'index.json'), 'utf8'));
  assert.deepEqual(idx.manifests, [], 'nothing tagged');
});

for (const [mode, env] of PATHS)
test(`a pull killed with SIGKILL resumes from its partial file with a Range request (${mode})`, async () => {
  const store = tmpDir();
  proxy.setPlan({ match: { method: 'GET', path: new RegExp(bigDigest) }, times: 100, fault: { kind: 'trickle', bytesPerSec: 2 * 1024 * 1024 } });
  const child = spawn(process.execPath, [BIN, '--storage-dir', store, 'pull', '--plain-http', ref], { stdio: 'ignore', env: { ...process.env, ...env } });
  const partial = path.join(store, 'ingest', `${bigDigest.replace(':', '-')}.partial`);
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline && !(existsSync(partial) && statSync(partial).size > 1024 * 1024)) await new Promise((r) => setTimeout(r, 50));
  child.kill('SIGKILL');
  await exitOf(child);
  proxy.setPlan();
  const have = statSync(partial).size;
  assert.ok(have > 0 && have < BIG, `partial has ${have} bytes`);
  proxy.requests.length = 0;
  const r = await cli(['--json', '--storage-dir', store, 'pull', '--plain-http', ref], env);
  assert.equal(r.code, 0, r.stderr);
  const get = proxy.requests.find((q) => q.method === 'GET' && q.path.includes(bigDigest));
  assert.ok(get?.range, 'resumed with a Range request');
  assert.ok(Number(/bytes=(\d+)-/.exec(get!.range!)![1]) > 0);
  assert.deepEqual(storedBlob(store), big);
  assert.ok(JSON.parse(r.stdout).bytesDownloaded < BIG, 'did not download the whole blob again');
  assert.ok(!existsSync(partial));
});
