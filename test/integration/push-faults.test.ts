// Push through a fault-injecting proxy in front of a real docker-registry: resets mid-upload, 5xx bursts, 429 with
// Retry-After, and a push killed with SIGKILL that resumes its partly uploaded blob on the next run.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { runCli } from '../support/run-cli.js';
import { tmpDir, writeTree } from '../support/tmp.js';
import { startRegistry, type RegistryHandle } from '../support/registry.js';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.js';
import { exitOf } from '../support/child.js';

const ROOT = path.resolve(import.meta.dirname, '../../..');
const BIN = path.join(ROOT, 'bin/modctl');
const BIG = 8 * 1024 * 1024;
const CHUNK = 1024 * 1024;

let reg: RegistryHandle;
let proxy: FaultProxy;
const ctx = tmpDir('modctl-ctx-');
let n = 0;

before(async () => {
  reg = await startRegistry();
  proxy = await startFaultProxy(reg.url);
});
after(async () => {
  await proxy?.stop();
  await reg?.stop();
});

function cli(args: string[], env: NodeJS.ProcessEnv = {}) {
  return runCli(args, { env: { MODCTL_RETRY_BASE_MS: '5', ...env } });
}

/**
 * Both ways a PATCH body leaves: through undici on the main thread, and from the file on a send worker
 * (send-core.ts; with the minimum lowered to the chunk size, chunked PATCHes take that path too).
 */
const PATHS: Array<[string, NodeJS.ProcessEnv]> = [
  ['undici', { MODCTL_FAST_FETCH: '0' }],
  ['send workers', { MODCTL_FAST_FETCH_MIN: String(CHUNK) }],
];

/** A fresh artifact (unique content, so nothing is on the registry yet) built into a fresh store. */
async function freshArtifact(): Promise<{ store: string; ref: string; big: Buffer }> {
  n++;
  const dir = path.join(ctx, `m${n}`);
  const big = Buffer.alloc(BIG, n).fill(n + 1, Math.floor(BIG / 3));
  writeTree(dir, { 'weights.bin': big, 'config.json': `{"n":${n}}`, Modelfile: 'CONFIG config.json\nMODEL weights.bin\n' });
  const store = tmpDir();
  const ref = `${proxy.host}/faults/m${n}:v1`;
  const r = await cli(['--storage-dir', store, 'build', '-t', ref, '-f', path.join(dir, 'Modelfile'), dir]);
  assert.equal(r.code, 0, r.stderr);
  return { store, ref, big };
}

async function assertPullsBack(ref: string, big: Buffer) {
  const out = path.join(tmpDir(), 'out');
  const r = await cli(['pull', '--plain-http', ref, '--extract-dir', out, '--extract-from-remote']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(readFileSync(path.join(out, 'weights.bin')), big);
}

for (const [via, env] of PATHS)
for (const chunked of [false, true]) {
  test(`a connection reset in the middle of an upload is retried (${chunked ? 'chunked' : 'streamed'}, ${via})`, async () => {
    const a = await freshArtifact();
    proxy.setPlan({ match: { method: 'PATCH', path: /\/blobs\/uploads\// }, times: 1, skip: chunked ? 2 : 0, fault: { kind: 'reset-request-after', bytes: 300_000 } });
    try {
      const r = await cli(['--storage-dir', a.store, 'push', '--plain-http', a.ref, ...(chunked ? ['--chunk-size', String(CHUNK)] : [])], env);
      assert.equal(r.code, 0, r.stderr);
    } finally {
      proxy.setPlan();
    }
    assert.ok(proxy.requests.some((q) => q.fault === 'reset-request-after'), 'the fault was injected');
    await assertPullsBack(a.ref, a.big);
  });
}

test('503 bursts and 429 with Retry-After during push are retried', async () => {
  const a = await freshArtifact();
  proxy.setPlan([
    { match: { method: 'POST', path: /\/blobs\/uploads\// }, times: 2, fault: { kind: 'status', status: 503 } },
    { match: { method: 'PUT', path: /\/manifests\// }, times: 1, fault: { kind: 'status', status: 429, headers: { 'retry-after': '1' } } },
    { match: { method: 'HEAD', path: /\/blobs\// }, times: 1, fault: { kind: 'status', status: 502 } },
  ]);
  try {
    const r = await cli(['--storage-dir', a.store, 'push', '--plain-http', a.ref]);
    assert.equal(r.code, 0, r.stderr);
  } finally {
    proxy.setPlan();
  }
  await assertPullsBack(a.ref, a.big);
});

test('a non-retryable 4xx fails at once with a clear error naming the registry and operation', async () => {
  const a = await freshArtifact();
  proxy.requests.length = 0;
  proxy.setPlan({ match: { method: 'PUT', path: /\/manifests\// }, times: 100, fault: { kind: 'status', status: 403, headers: { 'content-type': 'application/json' }, body: '{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}' } });
  let r;
  try {
    r = await cli(['--storage-dir', a.store, 'push', '--plain-http', a.ref]);
  } finally {
    proxy.setPlan();
  }
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(proxy.host.replace(/\./g, '\\.')));
  assert.match(r.stderr, /DENIED|denied/);
  assert.equal(proxy.requests.filter((q) => q.method === 'PUT' && q.path.includes('/manifests/') && q.fault).length, 1, 'not retried');
});

for (const [via, env] of PATHS)
test(`a push killed with SIGKILL resumes its partly uploaded blob on the next run (chunked uploads, ${via})`, async () => {
  const a = await freshArtifact();
  proxy.requests.length = 0;
  // let three chunks through, then hold the fourth PATCH so the kill lands mid-blob while the registry's upload
  // state is exactly what the last answered Location says
  proxy.setPlan({ match: { method: 'PATCH', path: /\/blobs\/uploads\// }, skip: 3, times: 1000, fault: { kind: 'hang' } });
  const child = spawn(process.execPath, [BIN, '--storage-dir', a.store, 'push', '--plain-http', '--chunk-size', String(CHUNK), '-c', '1', a.ref], {
    stdio: 'ignore',
    env: { ...process.env, MODCTL_RETRY_BASE_MS: '5', ...env },
  });
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline && !proxy.requests.some((q) => q.method === 'PATCH' && q.fault === 'hang')) {
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill('SIGKILL');
  await exitOf(child);
  proxy.setPlan();
  const firstRun = proxy.requests.filter((q) => q.method === 'PATCH' && q.status >= 200 && q.status < 300).length;
  assert.equal(firstRun, 3, 'chunks uploaded before the kill');
  proxy.requests.length = 0;
  const r = await cli(['--storage-dir', a.store, 'push', '--plain-http', '--chunk-size', String(CHUNK), a.ref], env);
  assert.equal(r.code, 0, r.stderr);
  const secondRun = proxy.requests.filter((q) => q.method === 'PATCH').length;
  assert.equal(secondRun, BIG / CHUNK - firstRun, `the second run sent only the remaining chunks`);
  assert.ok(proxy.requests.some((q) => q.method === 'GET' && q.path.includes('/blobs/uploads/')), 'asked the registry for the upload status');
  await assertPullsBack(a.ref, a.big);
});

test('an upload session the registry no longer knows is detected and restarted', async () => {
  const a = await freshArtifact();
  // a remembered session that the registry answers 404 for (expired/purged)
  const { UploadSessions } = await import('../../src/remote/upload-sessions.js');
  const sessions = await UploadSessions.load(path.join(a.store, 'ingest', 'uploads.json'));
  const { LocalStore } = await import('../../src/content/local-store.js');
  const store = await LocalStore.open(a.store);
  const t = await store.resolve(a.ref);
  const m = JSON.parse((await store.readBlob(t.descriptor.digest)).toString());
  const big = m.layers.find((l: any) => l.size === BIG);
  sessions.set(UploadSessions.key(proxy.host, 'faults/m' + n, big.digest), `${proxy.url}/v2/faults/m${n}/blobs/uploads/00000000-dead-beef-0000-000000000000?_state=expired`);
  await sessions.flush();
  proxy.requests.length = 0;
  const r = await cli(['--storage-dir', a.store, 'push', '--plain-http', '--chunk-size', String(CHUNK), a.ref]);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(proxy.requests.some((q) => q.method === 'GET' && q.path.includes('00000000-dead-beef') && q.status === 404), 'asked about the stale session');
  await assertPullsBack(a.ref, a.big);
});
