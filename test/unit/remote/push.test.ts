import { readFileSync } from 'node:fs';
/**
 * Push against the in-process fake registry: upload styles, Location handling, 416 recovery, ECR-style 201 PATCH,
 * mounts, manifest PUT order, abort cleanup.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AbortedError, RegistryError } from '../../../src/errors.js';
import { parseReference } from '../../../src/oci/reference.js';
import { pushArtifact, pullArtifact } from '../../../src/remote/index.js';
import { FakeRegistry, sha256 } from './fake-registry.js';
import { baseOpts, bytes, makeArtifact, testAgent, tmpDir } from './helpers.js';

const MiB = 1024 * 1024;

async function setup(t: Parameters<typeof tmpDir>[0], opts: ConstructorParameters<typeof FakeRegistry>[0] = {}) {
  const reg = await FakeRegistry.start(opts);
  t.after(() => reg.close());
  const dir = await tmpDir(t);
  const agent = testAgent(t);
  return { reg, dir, agent };
}

test('push: small blobs monolithic, big blob one streamed PATCH, manifest by digest then tag; pull round-trips', async (t) => {
  const { reg, dir, agent } = await setup(t, { bearer: { users: { alice: 's3cret' } } });
  const home = `${dir}/home`;
  const { store, manifest, layers } = await makeArtifact(`${dir}/store`, 'example.com/m/x:v1', [bytes(1000, 1), bytes(6 * MiB, 2)]);
  const opts = baseOpts(agent, home, {
    env: { HOME: home, MODCTL_RETRY_BASE_MS: '1', DOCKER_AUTH_CONFIG: JSON.stringify({ auths: { [reg.host]: { auth: Buffer.from('alice:s3cret').toString('base64') } } }) },
  });
  const events: string[] = [];
  const res = await pushArtifact(store, 'example.com/m/x:v1', parseReference(`${reg.host}/team/model:v1`), { ...opts, onProgress: (e) => events.push(e.type) });
  assert.equal(res.digest, manifest.digest);
  assert.equal(res.blobsPushed, 3);
  assert.equal(res.blobsSkipped, 0);
  assert.ok(res.bytesUploaded >= 6 * MiB + 1000);
  assert.ok(events.includes('start') && events.includes('advance') && events.includes('done'));

  // one token asked for pull,push up front
  const tokenReqs = reg.requests('GET', '/token');
  assert.ok(tokenReqs.some((r) => decodeURIComponent(r.url).includes('scope=repository:team/model:pull,push')), JSON.stringify(tokenReqs.map((r) => r.url)));
  const patches = reg.requests('PATCH');
  assert.equal(patches.length, 1, 'big blob: exactly one streamed PATCH');
  assert.equal(patches[0].headers['content-length'], String(6 * MiB));
  assert.equal(patches[0].headers['content-range'], undefined);
  assert.equal(patches[0].headers['content-type'], 'application/octet-stream');
  const puts = reg.requests('PUT', '/blobs/uploads/');
  assert.equal(puts.length, 3);
  for (const p of puts) assert.match(p.url, /\?_state=st%2B\d+%2Fx%3D&digest=sha256%3A/, 'digest appended without re-encoding _state');
  const manifestPuts = reg.requests('PUT', '/manifests/').map((r) => r.url.replace(/.*\/manifests\//, ''));
  assert.deepEqual(manifestPuts, [manifest.digest, 'v1']);
  // the first HEAD (the biggest blob's) stood in for the ping: one 401, then every request carried the token
  const heads = reg.requests('HEAD', `/blobs/${layers[1].digest}`);
  assert.deepEqual(heads.map((h) => h.headers.authorization !== undefined), [false, true]);
  assert.equal(reg.requests('GET', '/v2/').filter((r) => new URL(r.url, reg.url).pathname === '/v2/').length, 0, 'no separate ping');

  // second push: everything skipped, tag PUT again anyway
  const again = await pushArtifact(store, 'example.com/m/x:v1', parseReference(`${reg.host}/team/model:v1`), opts);
  assert.equal(again.blobsSkipped, 3);
  assert.equal(again.blobsPushed, 0);
  assert.equal(reg.requests('PUT', '/manifests/v1').length, 2);

  // pull into a fresh store
  const { LocalStore } = await import('../../../src/content/local-store.js');
  const fresh = await LocalStore.open(`${dir}/store2`);
  const pulled = await pullArtifact(fresh, parseReference(`${reg.host}/team/model:v1`), opts);
  assert.equal(pulled.digest, manifest.digest);
  assert.equal(pulled.blobsFetched, 3);
  assert.equal(pulled.mediaType, 'application/vnd.oci.image.manifest.v1+json');
  assert.deepEqual(await fresh.readBlob(layers[0].digest), bytes(1000, 1));
  assert.ok(await fresh.hasBlob(layers[1].digest, 6 * MiB));
  const tagged = await fresh.resolve(`${reg.host}/team/model:v1`);
  assert.equal(tagged.descriptor.digest, manifest.digest);
});

test('push: chunked upload recovers from 416 via GET status and follows the newest (relative) Location', async (t) => {
  const { reg, dir, agent } = await setup(t, { relativeLocations: true, strictChunks: true });
  const data = bytes(5 * MiB + 123, 3);
  const { store } = await makeArtifact(`${dir}/store`, 'example.com/m/x:v1', [data]);
  let patches = 0;
  let injected = false;
  reg.hook = ({ req, res }) => {
    if (req.method === 'PATCH') patches++;
    // The 2nd PATCH is refused with 416 without being stored; the client must ask GET <location> for the offset.
    if (req.method === 'PATCH' && patches === 2 && !injected) {
      injected = true;
      res.writeHead(416, { 'content-type': 'application/json' });
      res.end('{"errors":[{"code":"BLOB_UPLOAD_INVALID","message":"range"}]}');
      return true;
    }
    return false;
  };
  const res = await pushArtifact(store, 'example.com/m/x:v1', parseReference(`${reg.host}/m/chunky:v1`), baseOpts(agent, dir, { chunkSize: 2 * MiB }));
  assert.equal(res.blobsPushed, 2);
  const status = reg.requests('GET', '/blobs/uploads/');
  assert.equal(status.length, 1, 'asked the upload status once after 416');
  const ranges = reg.requests('PATCH').map((r) => r.headers['content-range']);
  assert.deepEqual(ranges, ['0-2097151', '2097152-4194303', '2097152-4194303', '4194304-5243002']);
  assert.equal(reg.blobs.get(sha256(data))?.length, data.length);
});

test('push: ECR-style 201 on PATCH and a Range that lags behind (discarded chunk) are handled', async (t) => {
  const { reg, dir, agent } = await setup(t);
  const data = bytes(3 * MiB, 4);
  const { store } = await makeArtifact(`${dir}/store`, 'example.com/m/x:v1', [data]);
  let n = 0;
  reg.hook = async ({ req, res, body, url }) => {
    if (req.method !== 'PATCH') return false;
    n++;
    const id = url.pathname.split('/').pop()!;
    const up = reg.uploads.get(id)!;
    if (n === 2) {
      // silently discard this chunk: 201, Range unchanged
      res.writeHead(201, { location: url.pathname + url.search, range: `0-${up.size - 1}` });
      res.end();
      return true;
    }
    up.data.push(body);
    up.size += body.length;
    up.state++;
    res.writeHead(201, { location: `/v2/m/ecr/blobs/uploads/${id}?_state=${encodeURIComponent(`st+${up.state}/x=`)}`, range: `0-${up.size - 1}` });
    res.end();
    return true;
  };
  const r = await pushArtifact(store, 'example.com/m/x:v1', parseReference(`${reg.host}/m/ecr:v1`), baseOpts(agent, dir, { chunkSize: MiB }));
  assert.equal(r.blobsPushed, 2);
  assert.deepEqual(
    reg.requests('PATCH').map((x) => x.headers['content-range']),
    ['0-1048575', '1048576-2097151', '1048576-2097151', '2097152-3145727'],
  );
  assert.equal(reg.blobs.get(sha256(data))?.length, data.length);
});

test('push: a network failure mid-PATCH resumes from the upload status offset with the file reopened there', async (t) => {
  const { reg, dir, agent } = await setup(t);
  const data = bytes(6 * MiB, 5);
  const { store } = await makeArtifact(`${dir}/store`, 'example.com/m/x:v1', [data]);
  let first = true;
  const stateAdvances = false; // a registry whose Location stays valid (zot, spec-strict): resume in place
  reg.hook = async ({ req, res, body, url }) => {
    if (req.method !== 'PATCH' || !first) return false;
    first = false;
    // accept the first 1 MiB, then drop the connection without answering
    const id = url.pathname.split('/').pop()!;
    const up = reg.uploads.get(id)!;
    up.data.push(body.subarray(0, MiB));
    up.size += MiB;
    if (stateAdvances) up.state++;
    res.socket?.destroy();
    return true;
  };
  const r = await pushArtifact(store, 'example.com/m/x:v1', parseReference(`${reg.host}/m/flaky:v1`), baseOpts(agent, dir));
  assert.equal(r.blobsPushed, 2);
  const patches = reg.requests('PATCH');
  assert.equal(patches.length, 2, JSON.stringify(reg.log.map((l) => `${l.method} ${l.url} ${l.headers['content-range'] ?? ''}`)));
  assert.equal(patches[1].headers['content-range'], `${MiB}-${6 * MiB - 1}`, JSON.stringify(reg.log.map((l) => `${l.method} ${l.url}`)));
  assert.equal(patches[1].headers['content-length'], String(5 * MiB));
  assert.equal(reg.requests('GET', '/blobs/uploads/').length, 1);
  assert.equal(reg.blobs.get(sha256(data))?.length, data.length);
});

test('push: a network failure mid-PATCH on a 2.8-like registry (stale _state → 404 status) restarts with a new POST', async (t) => {
  const { reg, dir, agent } = await setup(t);
  const data = bytes(6 * MiB, 5);
  const { store } = await makeArtifact(`${dir}/store`, 'example.com/m/x:v1', [data]);
  let first = true;
  reg.hook = async ({ req, res, body, url }) => {
    if (req.method !== 'PATCH' || !first) return false;
    first = false;
    const up = reg.uploads.get(url.pathname.split('/').pop()!)!;
    up.data.push(body.subarray(0, MiB));
    up.size += MiB;
    up.state++; // the Location we hold is now stale, as on distribution 2.8
    res.socket?.destroy();
    return true;
  };
  const r = await pushArtifact(store, 'example.com/m/x:v1', parseReference(`${reg.host}/m/flaky28:v1`), baseOpts(agent, dir));
  assert.equal(r.blobsPushed, 2);
  const seq = reg.log.map((l) => l.method + ' ' + l.url.replace(/\?.*/, '').replace(/uploads\/[0-9a-f]+/, 'uploads/U').replace(/sha256:[0-9a-f]+/, 'D'));
  const from = seq.indexOf('POST /v2/m/flaky28/blobs/uploads/');
  assert.deepEqual(seq.slice(from, from + 7), [
    'POST /v2/m/flaky28/blobs/uploads/',
    'PATCH /v2/m/flaky28/blobs/uploads/U',
    'HEAD /v2/m/flaky28/blobs/D',
    'GET /v2/m/flaky28/blobs/uploads/U',
    'DELETE /v2/m/flaky28/blobs/uploads/U',
    'POST /v2/m/flaky28/blobs/uploads/',
    'PATCH /v2/m/flaky28/blobs/uploads/U',
  ]);
  assert.equal(reg.requests('PATCH')[1].headers['content-range'], undefined, 'a fresh streamed PATCH from 0');
  assert.equal(reg.blobs.get(sha256(data))?.length, data.length);
});

test('push: cross-repository mount (201) and a 202 that continues with the opened session', async (t) => {
  const { reg, dir, agent } = await setup(t, { bearer: { anonymous: true } });
  const a = bytes(2000, 6);
  const b = bytes(3000, 7);
  const { store } = await makeArtifact(`${dir}/store`, 'example.com/m/x:v1', [a, b]);
  reg.putBlob('other/repo', a); // only `a` is mountable
  const r = await pushArtifact(store, 'example.com/m/x:v1', parseReference(`${reg.host}/m/target:v1`), baseOpts(agent, dir, { mountFrom: ['other/repo'], concurrency: 1 }));
  assert.equal(r.blobsMounted, 1);
  assert.equal(r.blobsPushed, 2); // b and the config
  const posts = reg.requests('POST', '/blobs/uploads/');
  assert.ok(posts.every((p) => p.url.includes('mount=')), 'no second POST after a 202 mount answer');
  const tok = reg.requests('GET', '/token').map((x) => decodeURIComponent(x.url));
  assert.ok(tok.some((u) => u.includes('scope=repository:m/target:pull,push') && u.includes('scope=repository:other/repo:pull')), tok.join('\n'));
});

test('push: abort keeps the open upload session for the next run (remembered in the store) and throws AbortedError', async (t) => {
  const { reg, dir, agent } = await setup(t);
  const { store } = await makeArtifact(`${dir}/store`, 'example.com/m/x:v1', [bytes(5 * MiB, 8)]);
  const ac = new AbortController();
  reg.hook = async ({ req }) => {
    if (req.method === 'PATCH') {
      ac.abort();
      await new Promise((r) => setTimeout(r, 50));
      return true; // never answer; the socket is torn down by the client
    }
    return false;
  };
  await assert.rejects(
    pushArtifact(store, 'example.com/m/x:v1', parseReference(`${reg.host}/m/abort:v1`), baseOpts(agent, dir, { signal: ac.signal })),
    AbortedError,
  );
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(reg.requests('DELETE', '/blobs/uploads/').length, 0, 'the session is not cancelled');
  assert.equal(reg.uploads.size, 1);
  const remembered = JSON.parse(readFileSync(`${dir}/store/ingest/uploads.json`, 'utf8'));
  assert.equal(Object.keys(remembered).length, 1, 'the session is remembered for resuming');
});

test('push: a non-retryable 4xx fails at once with registry, operation, status and OCI code', async (t) => {
  const { reg, dir, agent } = await setup(t);
  const { store } = await makeArtifact(`${dir}/store`, 'example.com/m/x:v1', [bytes(100, 9)]);
  reg.hook = ({ req, res }) => {
    if (req.method === 'POST') {
      reg.error(res, 403, 'DENIED', 'requested access to the resource is denied');
      return true;
    }
    return false;
  };
  const err = await pushArtifact(store, 'example.com/m/x:v1', parseReference(`${reg.host}/m/denied:v1`), baseOpts(agent, dir)).catch((e) => e);
  assert.ok(err instanceof RegistryError, String(err));
  assert.equal(err.status, 403);
  assert.deepEqual(err.ociCodes, ['DENIED']);
  assert.match(err.message, new RegExp(`^${reg.host.replace(/\./g, '\\.')}: push blob sha256:[0-9a-f]{12}…: forbidden \\(HTTP 403\\)`));
  assert.ok(err.hint);
  // the layer's POST fails and is not retried; the config (pushed after the layers) is never attempted
  assert.equal(reg.requests('POST').length, 1);
});
