/**
 * Pull against the in-process fake registry: resume with Range, 200 restart, corrupt bytes, cross-origin redirects,
 * manifest verification corners, index pulls.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { promises as fsp } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { DigestMismatchError, RegistryError } from '../../../src/errors.js';
import { LocalStore } from '../../../src/content/local-store.js';
import { MT_OCI_INDEX, MT_OCI_MANIFEST } from '../../../src/oci/media-types.js';
import { parseReference } from '../../../src/oci/reference.js';
import { fetchBlobBytes, fetchManifest, openBlobStream, pullArtifact } from '../../../src/remote/index.js';
import { FakeRegistry, serveBytes, sha256 } from './fake-registry.js';
import { writeBody } from '../../../src/remote/download.js';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { baseOpts, bytes, testAgent, tmpDir } from './helpers.js';

const MiB = 1024 * 1024;

type OptsFor = (agent: ReturnType<typeof testAgent>, dir: string, env?: NodeJS.ProcessEnv) => ReturnType<typeof baseOpts>;
/**
 * The two ways blob bodies are received: undici on the main thread (the injected agent), and the fetch worker
 * threads (no injected dispatcher; every blob, however small, forced through them, O_DIRECT included).
 */
const PATHS: Array<[string, OptsFor]> = [
  ['undici', (agent, dir, env) => baseOpts(agent, dir, env ? { env } : {})],
  [
    'fetch workers',
    (agent, dir, env) => {
      const o = baseOpts(agent, dir);
      return { ...o, dispatcher: undefined, env: { ...(env ?? o.env), MODCTL_FAST_FETCH_MIN: '1', MODCTL_DIRECT_IO_MIN: '1' } };
    },
  ],
];

/** Publish a one-layer artifact directly in the fake registry. */
function publish(reg: FakeRegistry, repo: string, tag: string, layers: Buffer[]) {
  const cfg = Buffer.from('{"modelfs":{"type":"layers","diffIds":[]}}');
  const config = { mediaType: 'application/vnd.cncf.model.config.v1+json', digest: reg.putBlob(repo, cfg), size: cfg.length };
  const ls = layers.map((l) => ({ mediaType: 'application/vnd.cncf.model.weight.v1.raw', digest: reg.putBlob(repo, l), size: l.length }));
  const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MT_OCI_MANIFEST, config, layers: ls }));
  const digest = reg.putManifest(repo, tag, bytes, MT_OCI_MANIFEST);
  return { digest, bytes, config, layers: ls };
}

async function setup(t: Parameters<typeof tmpDir>[0], opts: ConstructorParameters<typeof FakeRegistry>[0] = {}) {
  const reg = await FakeRegistry.start(opts);
  t.after(() => reg.close());
  const dir = await tmpDir(t);
  const agent = testAgent(t);
  const store = await LocalStore.open(`${dir}/store`);
  return { reg, dir, agent, store };
}

for (const [via, opts] of PATHS) {
  test(`pull: resumes a partial file with Range (206) after re-hashing it (${via})`, async (t) => {
    const { reg, dir, agent, store } = await setup(t);
    const data = bytes(20 * MiB, 11); // above the worker-hash threshold
    const art = publish(reg, 'm/r', 'v1', [data]);
    const have = 7 * MiB + 5;
    await fsp.writeFile(store.partialPath(art.layers[0].digest), data.subarray(0, have));
    const r = await pullArtifact(store, parseReference(`${reg.host}/m/r:v1`), opts(agent, dir));
    assert.equal(r.blobsFetched, 2);
    const gets = reg.requests('GET', `/blobs/${art.layers[0].digest}`);
    assert.equal(gets.length, 1);
    assert.equal(gets[0].headers.range, `bytes=${have}-`);
    // the fetch workers ask for one transfer per connection; undici keeps connections alive
    assert.equal(gets[0].headers.connection === 'close', via === 'fetch workers', 'the body took the path under test');
    assert.equal(r.bytesDownloaded, data.length - have + art.config.size);
    assert.ok(await store.hasBlob(art.layers[0].digest, data.length));
    await assert.rejects(fsp.stat(store.partialPath(art.layers[0].digest)));
  });
}

for (const [via, opts] of PATHS)
test(`pull: a connection dropped mid-body is retried with Range from what reached the disk (${via})`, async (t) => {
  const { reg, dir, agent, store } = await setup(t);
  const data = bytes(5 * MiB, 25);
  const art = publish(reg, 'm/drop', 'v1', [data]);
  let first = true;
  reg.hook = ({ req, res, url }) => {
    if (req.method === 'GET' && url.pathname.endsWith(art.layers[0].digest) && first) {
      first = false;
      res.writeHead(200, { 'content-length': String(data.length) });
      res.write(data.subarray(0, 3 * MiB + 100), () => setTimeout(() => res.socket?.destroy(), 20));
      return true;
    }
    return false;
  };
  const r = await pullArtifact(store, parseReference(`${reg.host}/m/drop:v1`), opts(agent, dir));
  assert.equal(r.blobsFetched, 2);
  const gets = reg.requests('GET', `/blobs/${art.layers[0].digest}`);
  assert.equal(gets.length, 2);
  assert.match(String(gets[1].headers.range), /^bytes=[1-9]\d*-$/, 'resumed, not restarted');
  assert.deepEqual(await fsp.readFile(store.blobPath(art.layers[0].digest)), data);
});

for (const [via, opts] of PATHS)
test(`pull: a 200 answer to a Range request restarts from 0 (the partial is truncated) (${via})`, async (t) => {
  const { reg, dir, agent, store } = await setup(t);
  const data = bytes(3 * MiB, 12);
  const art = publish(reg, 'm/r', 'v1', [data]);
  // a partial whose bytes are garbage: a correct restart must not keep them
  await fsp.writeFile(store.partialPath(art.layers[0].digest), Buffer.alloc(MiB, 0x55));
  reg.hook = ({ req, res, url }) => {
    if (req.method === 'GET' && url.pathname.endsWith(art.layers[0].digest)) {
      res.writeHead(200, { 'content-length': String(data.length) });
      res.end(data);
      return true;
    }
    return false;
  };
  const r = await pullArtifact(store, parseReference(`${reg.host}/m/r:v1`), opts(agent, dir));
  assert.equal(r.blobsFetched, 2);
  assert.deepEqual(await fsp.readFile(store.blobPath(art.layers[0].digest)), data);
});

for (const [via, opts] of PATHS)
test(`pull: a 416 to our Range request discards the partial and downloads from 0 (${via})`, async (t) => {
  const { reg, dir, agent, store } = await setup(t);
  const data = bytes(MiB, 24);
  const art = publish(reg, 'm/r416', 'v1', [data]);
  await fsp.writeFile(store.partialPath(art.layers[0].digest), data.subarray(0, 1000));
  reg.hook = ({ req, res }) => {
    if (req.method === 'GET' && req.headers.range) {
      res.writeHead(416, { 'content-range': `bytes */${data.length}` });
      res.end();
      return true;
    }
    return false;
  };
  const r = await pullArtifact(store, parseReference(`${reg.host}/m/r416:v1`), opts(agent, dir));
  assert.equal(r.blobsFetched, 2);
  assert.deepEqual(await fsp.readFile(store.blobPath(art.layers[0].digest)), data);
});

for (const [via, opts] of PATHS)
test(`pull: a partial re-hash mismatch (corrupt prefix) is detected at the end and nothing is committed (${via})`, async (t) => {
  const { reg, dir, agent, store } = await setup(t);
  const data = bytes(2 * MiB, 13);
  const art = publish(reg, 'm/r', 'v1', [data]);
  const bad = Buffer.from(data.subarray(0, MiB));
  bad[10] ^= 0xff;
  await fsp.writeFile(store.partialPath(art.layers[0].digest), bad);
  const err = await pullArtifact(store, parseReference(`${reg.host}/m/r:v1`), opts(agent, dir)).catch((e) => e);
  assert.ok(err instanceof DigestMismatchError, String(err));
  assert.equal(await store.hasBlob(art.layers[0].digest), false);
  await assert.rejects(fsp.stat(store.partialPath(art.layers[0].digest)), 'corrupt partial removed so the next pull starts clean');
  // and the next pull succeeds from scratch
  const ok = await pullArtifact(store, parseReference(`${reg.host}/m/r:v1`), opts(agent, dir));
  assert.equal(ok.digest, art.digest);
});

for (const [via, opts] of PATHS)
test(`pull: corrupt blob bytes from the registry are rejected and never committed; no manifest or tag is stored (${via})`, async (t) => {
  const { reg, dir, agent, store } = await setup(t);
  const data = bytes(300_000, 14);
  const art = publish(reg, 'm/c', 'v1', [data]);
  reg.hook = ({ req, res, url }) => {
    if (req.method === 'GET' && url.pathname.endsWith(art.layers[0].digest)) {
      const evil = Buffer.from(data);
      evil[1234] ^= 1;
      res.writeHead(200, { 'content-length': String(evil.length), 'docker-content-digest': art.layers[0].digest });
      res.end(evil);
      return true;
    }
    return false;
  };
  const err = await pullArtifact(store, parseReference(`${reg.host}/m/c:v1`), opts(agent, dir)).catch((e) => e);
  assert.ok(err instanceof DigestMismatchError, String(err));
  assert.equal(await store.hasBlob(art.layers[0].digest), false);
  assert.equal(await store.hasBlob(art.digest), false);
  assert.deepEqual((await store.readIndex()).manifests, []);
  const ingest = await fsp.readdir(store.ingestDir);
  assert.deepEqual(ingest, [], 'no partial left behind');
  assert.equal(reg.requests('GET', `/blobs/${art.layers[0].digest}`).length, 1, 'digest mismatch is not retried');
});

for (const [via, opts] of PATHS)
test(`pull: an overlong body fails with a size error as soon as it passes the declared size (${via})`, async (t) => {
  const { reg, dir, agent, store } = await setup(t);
  const data = bytes(1000, 15);
  const art = publish(reg, 'm/l', 'v1', [data]);
  reg.hook = ({ req, res, url }) => {
    if (req.method === 'GET' && url.pathname.endsWith(art.layers[0].digest)) {
      res.writeHead(200, { 'content-length': String(2 * MiB) });
      res.end(Buffer.alloc(2 * MiB));
      return true;
    }
    return false;
  };
  const err = await pullArtifact(store, parseReference(`${reg.host}/m/l:v1`), opts(agent, dir)).catch((e) => e);
  assert.equal(err?.code, 'E_SIZE_MISMATCH', String(err));
  assert.equal(await store.hasBlob(art.layers[0].digest), false);
});

test('fetch workers hand a chunked blob body back to undici, which pulls it verified', async (t) => {
  const { reg, dir, agent, store } = await setup(t);
  const data = bytes(3 * MiB + 7, 26);
  const art = publish(reg, 'm/chunked', 'v1', [data]);
  reg.hook = ({ req, res, url }) => {
    if (req.method === 'GET' && url.pathname.endsWith(art.layers[0].digest)) {
      res.writeHead(200, { 'transfer-encoding': 'chunked' });
      res.write(data.subarray(0, MiB));
      res.end(data.subarray(MiB));
      return true;
    }
    return false;
  };
  const [, workers] = PATHS[1];
  const r = await pullArtifact(store, parseReference(`${reg.host}/m/chunked:v1`), workers(agent, dir));
  assert.equal(r.blobsFetched, 2);
  const gets = reg.requests('GET', `/blobs/${art.layers[0].digest}`);
  assert.deepEqual(
    gets.map((g) => g.headers.connection === 'close'),
    [true, false],
    'first the workers, then undici',
  );
  assert.deepEqual(await fsp.readFile(store.blobPath(art.layers[0].digest)), data);
});

for (const [via, opts] of PATHS)
test(`blob GET redirected to another origin: no Authorization there, Range and Accept kept (${via})`, async (t) => {
  const { reg, dir, agent } = await setup(t, { basic: { bob: 'pw' } });
  const data = bytes(100_000, 16);
  const art = publish(reg, 'm/cdn', 'v1', [data]);
  const seen: http.IncomingHttpHeaders[] = [];
  const cdn = http.createServer((req, res) => {
    seen.push(req.headers);
    serveBytes(req, res, data);
  });
  cdn.keepAliveTimeout = 50;
  await new Promise<void>((r) => cdn.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => { cdn.closeAllConnections(); cdn.close(() => r()); }));
  const cdnUrl = `http://localhost:${(cdn.address() as AddressInfo).port}/blob?X-Amz-Signature=sekrit`;
  reg.hook = ({ req, res, url }) => {
    // without credentials (the first request of a client) the registry's own 401 teaches the scheme
    if (req.method === 'GET' && url.pathname.endsWith(art.layers[0].digest) && req.headers.authorization) {
      assert.match(String(req.headers.authorization), /^Basic /, 'the registry itself gets credentials');
      res.writeHead(307, { location: cdnUrl });
      res.end();
      return true;
    }
    return false;
  };
  const env = { HOME: dir, MODCTL_RETRY_BASE_MS: '1', DOCKER_AUTH_CONFIG: JSON.stringify({ auths: { [reg.host]: { username: 'bob', password: 'pw' } } }) };
  const ref = parseReference(`${reg.host}/m/cdn:v1`);
  const stream = await openBlobStream(ref, art.layers[0], { ...baseOpts(agent, dir), env, offset: 1000 });
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  assert.deepEqual(Buffer.concat(chunks), data.subarray(1000));
  assert.equal(seen.length, 1);
  assert.equal(seen[0].authorization, undefined, 'Authorization must not reach the CDN');
  assert.equal(seen[0].range, 'bytes=1000-');
  assert.equal(seen[0].accept, '*/*');
  // and a full pull through the redirect verifies normally
  const store2 = await LocalStore.open(`${dir}/s2`);
  const r = await pullArtifact(store2, ref, opts(agent, dir, env));
  assert.equal(r.blobsFetched, 2);
  assert.ok(seen.every((h) => h.authorization === undefined));
});

test('openBlobStream skips bytes itself when the server ignores Range', async (t) => {
  const { reg, dir, agent } = await setup(t);
  const data = bytes(5000, 17);
  const art = publish(reg, 'm/s', 'v1', [data]);
  reg.hook = ({ req, res, url }) => {
    if (req.method === 'GET' && url.pathname.endsWith(art.layers[0].digest)) {
      res.writeHead(200, { 'content-length': String(data.length) });
      res.end(data);
      return true;
    }
    return false;
  };
  const s = await openBlobStream(parseReference(`${reg.host}/m/s:v1`), art.layers[0], { ...baseOpts(agent, dir), offset: 4000 });
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  assert.deepEqual(Buffer.concat(chunks), data.subarray(4000));
});

test('manifests without Docker-Content-Digest: GET hashes the bytes, PUT succeeds', async (t) => {
  const { reg, dir, agent, store } = await setup(t, { noManifestDigest: true });
  const art = publish(reg, 'm/ecr', 'v1', [bytes(10, 18)]);
  const ref = parseReference(`${reg.host}/m/ecr:v1`);
  const m = await fetchManifest(ref, baseOpts(agent, dir));
  assert.equal(m.descriptor.digest, art.digest);
  assert.equal(m.descriptor.mediaType, MT_OCI_MANIFEST);
  const r = await pullArtifact(store, ref, baseOpts(agent, dir));
  assert.equal(r.digest, art.digest);
  const { pushArtifact } = await import('../../../src/remote/index.js');
  const p = await pushArtifact(store, `${reg.host}/m/ecr:v1`, parseReference(`${reg.host}/m/ecr2:v2`), baseOpts(agent, dir));
  assert.equal(p.digest, art.digest);
});

test('manifest verification: wrong DCD, wrong bytes by digest, mediaType/Content-Type mismatch, oversize', async (t) => {
  const { reg, dir, agent } = await setup(t);
  const art = publish(reg, 'm/v', 'v1', [bytes(10, 19)]);
  const opts = baseOpts(agent, dir);
  let mode = '';
  reg.hook = ({ req, res, url }) => {
    if (req.method !== 'GET' || !url.pathname.includes('/manifests/')) return false;
    if (mode === 'dcd') res.writeHead(200, { 'content-type': MT_OCI_MANIFEST, 'docker-content-digest': sha256('other') });
    else if (mode === 'bytes') res.writeHead(200, { 'content-type': MT_OCI_MANIFEST });
    else if (mode === 'ct') res.writeHead(200, { 'content-type': MT_OCI_INDEX });
    else if (mode === 'octet') res.writeHead(200, { 'content-type': 'application/octet-stream' });
    else if (mode === 'big') {
      res.writeHead(200, { 'content-type': MT_OCI_MANIFEST, 'content-length': String(5 * MiB) });
      res.end(Buffer.alloc(5 * MiB, 0x20));
      return true;
    }
    res.end(mode === 'bytes' ? Buffer.concat([art.bytes, Buffer.from(' ')]) : art.bytes);
    return true;
  };
  mode = 'dcd';
  await assert.rejects(fetchManifest(parseReference(`${reg.host}/m/v:v1`), opts), DigestMismatchError);
  mode = 'bytes';
  await assert.rejects(fetchManifest(parseReference(`${reg.host}/m/v@${art.digest}`), opts), DigestMismatchError);
  mode = 'ct';
  await assert.rejects(fetchManifest(parseReference(`${reg.host}/m/v:v1`), opts), /contradicts/);
  mode = 'octet'; // Artifactory-style generic type is tolerated
  assert.equal((await fetchManifest(parseReference(`${reg.host}/m/v:v1`), opts)).descriptor.digest, art.digest);
  mode = 'big';
  await assert.rejects(fetchManifest(parseReference(`${reg.host}/m/v:v1`), opts), /limit/);
  const accept = reg.requests('GET', '/manifests/')[0].headers.accept ?? '';
  for (const t2 of [MT_OCI_MANIFEST, MT_OCI_INDEX, 'application/vnd.docker.distribution.manifest.v2+json', 'application/vnd.docker.distribution.manifest.list.v2+json']) {
    assert.ok(accept.includes(t2), `Accept lists ${t2}`);
  }
});

test('pull of an index fetches every child manifest and its blobs; the index is tagged', async (t) => {
  const { reg, dir, agent, store } = await setup(t);
  const a = publish(reg, 'm/i', 'a', [bytes(100, 20)]);
  const b = publish(reg, 'm/i', 'b', [bytes(200, 21)]);
  const idx = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MT_OCI_INDEX,
      manifests: [
        { mediaType: MT_OCI_MANIFEST, digest: a.digest, size: a.bytes.length },
        { mediaType: MT_OCI_MANIFEST, digest: b.digest, size: b.bytes.length },
      ],
    }),
  );
  const d = reg.putManifest('m/i', 'all', idx, MT_OCI_INDEX);
  const r = await pullArtifact(store, parseReference(`${reg.host}/m/i:all`), { ...baseOpts(agent, dir), tagAs: 'local/all:1' });
  assert.equal(r.digest, d);
  assert.equal(r.mediaType, MT_OCI_INDEX);
  assert.equal(r.blobsFetched, 3, 'two layers + one shared config');
  for (const x of [a.digest, b.digest, d]) assert.ok(await store.hasBlob(x));
  assert.equal((await store.resolve('local/all:1')).descriptor.digest, d);
});

test('fetchBlobBytes verifies and caps', async (t) => {
  const { reg, dir, agent } = await setup(t);
  const art = publish(reg, 'm/b', 'v1', [bytes(10, 22)]);
  const ref = parseReference(`${reg.host}/m/b:v1`);
  const got = await fetchBlobBytes(ref, art.config, baseOpts(agent, dir));
  assert.equal(sha256(got), art.config.digest);
  await assert.rejects(fetchBlobBytes(ref, { ...art.config, size: 5 * MiB }, baseOpts(agent, dir)), /limit/);
  await assert.rejects(fetchBlobBytes(ref, { ...art.config, size: art.config.size - 1 }, baseOpts(agent, dir)), /size mismatch/);
});

test('pull of a missing tag is a RegistryError with MANIFEST_UNKNOWN and a hint', async (t) => {
  const { reg, dir, agent, store } = await setup(t);
  const err = await pullArtifact(store, parseReference(`${reg.host}/m/none:v9`), baseOpts(agent, dir)).catch((e) => e);
  assert.ok(err instanceof RegistryError);
  assert.equal(err.status, 404);
  assert.deepEqual(err.ociCodes, ['MANIFEST_UNKNOWN']);
  assert.match(err.message, /fetch manifest m\/none:v9/);
  assert.ok(err.hint);
});

test('writeBody fails at once for a response body destroyed before it is read (an abort while the file opened)', async (t) => {
  const dir = await tmpDir(t);
  const body = new Readable({ read() {} });
  body.destroy();
  await new Promise((r) => setImmediate(r)); // its 'close' has been emitted already
  const hash = createHash('sha256');
  const outcome = await Promise.race([
    writeBody(body, `${dir}/partial`, 0, 10, hash, () => {}, () => {}).then(
      () => 'resolved',
      () => 'rejected',
    ),
    new Promise((r) => setTimeout(() => r('hung'), 2000)),
  ]);
  assert.equal(outcome, 'rejected');
});

test('fetch workers: a failure on our side (the partial path is not writable) is E_IO, said once, not retried', async (t) => {
  const { reg, dir, agent, store } = await setup(t);
  const data = bytes(2 * MiB, 27);
  const art = publish(reg, 'm/io', 'v1', [data]);
  await fsp.mkdir(store.partialPath(art.layers[0].digest), { recursive: true });
  const [, workers] = PATHS[1];
  const err = await pullArtifact(store, parseReference(`${reg.host}/m/io:v1`), workers(agent, dir)).catch((e) => e);
  assert.equal(err?.code, 'E_IO', String(err));
  assert.match(String(err?.message), /pull blob sha256:/);
  assert.equal(reg.requests('GET', `/blobs/${art.layers[0].digest}`).length, 1, 'not retried');
  assert.equal(await store.hasBlob(art.layers[0].digest), false);
});
