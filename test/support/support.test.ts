/**
 * Proves the integration-test helpers work, using plain undici (not the project's registry client).
 */
import assert from 'node:assert/strict';
import { createHash, createPublicKey, randomBytes, verify, X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { Agent, request, type Dispatcher } from 'undici';
import { startFaultProxy, type FaultProxy } from './fault-proxy.js';
import { startRegistry, type RegistryHandle } from './registry.js';
import { startTokenServer } from './token-server.js';

const sha256 = (b: Uint8Array): string => 'sha256:' + createHash('sha256').update(b).digest('hex');
const basic = (u: string, p: string): string => 'Basic ' + Buffer.from(`${u}:${p}`).toString('base64');

/** Parses `Bearer realm="…",service="…"` (enough for 2.8's challenges). */
function parseChallenge(h: string | string[] | undefined): { scheme: string; params: Record<string, string> } {
  const v = Array.isArray(h) ? h[0] : h;
  assert.ok(v, 'missing WWW-Authenticate');
  const m = /^(\S+)\s+(.*)$/.exec(v);
  assert.ok(m, `bad challenge ${v}`);
  const params: Record<string, string> = {};
  for (const p of m[2].matchAll(/([a-zA-Z_]+)="((?:[^"\\]|\\.)*)"/g)) params[p[1]] = p[2];
  return { scheme: m[1], params };
}

function header(h: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const v = h[name.toLowerCase()];
  return Array.isArray(v) ? v.join(', ') : v;
}

/** Reads a response body, returning what arrived and the error that ended it (if any). */
async function drain(body: AsyncIterable<Buffer | Uint8Array>): Promise<{ data: Buffer; error?: unknown }> {
  const chunks: Buffer[] = [];
  try {
    for await (const c of body) chunks.push(Buffer.from(c));
    return { data: Buffer.concat(chunks) };
  } catch (error) {
    return { data: Buffer.concat(chunks), error };
  }
}

/** Monolithic upload: POST → 202 + Location; PUT Location&digest=… → 201. */
async function pushBlob(
  base: string,
  repo: string,
  data: Buffer,
  headers: Record<string, string> = {},
  dispatcher?: Dispatcher,
): Promise<{ location: string; putStatus: number }> {
  const post = await request(`${base}/v2/${repo}/blobs/uploads/`, {
    method: 'POST',
    headers: { ...headers, 'content-length': '0' },
    dispatcher,
  });
  await post.body.dump();
  assert.equal(post.statusCode, 202, `upload POST → ${post.statusCode}`);
  const loc = header(post.headers, 'location');
  assert.ok(loc, 'upload POST without Location');
  const url = new URL(loc, base).toString();
  const put = await request(`${url}${url.includes('?') ? '&' : '?'}digest=${encodeURIComponent(sha256(data))}`, {
    method: 'PUT',
    headers: { ...headers, 'content-type': 'application/octet-stream', 'content-length': String(data.length) },
    body: data,
    dispatcher,
  });
  const text = await put.body.text();
  assert.equal(put.statusCode, 201, `upload PUT → ${put.statusCode} ${text}`);
  return { location: loc, putStatus: put.statusCode };
}

async function get(url: string, headers: Record<string, string> = {}, dispatcher?: Dispatcher) {
  const r = await request(url, { headers, dispatcher });
  const text = await r.body.text();
  return { status: r.statusCode, headers: r.headers, text };
}

describe('startRegistry', () => {
  test('plain registry answers 200 on /v2/ and stop() removes everything', async () => {
    const reg = await startRegistry();
    let stopped = false;
    try {
      assert.match(reg.host, /^127\.0\.0\.1:\d+$/);
      assert.equal(reg.url, `http://${reg.host}`);
      const r = await get(`${reg.url}/v2/`);
      assert.equal(r.status, 200);
      assert.equal(header(r.headers, 'docker-distribution-api-version'), 'registry/2.0');
      assert.ok(existsSync(reg.dataDir));
      // Only loopback: the config binds 127.0.0.1.
      assert.match(readFileSync(reg.configFile, 'utf8'), /addr: "127\.0\.0\.1:\d+"/);
      // Default: delete disabled → 405 UNSUPPORTED.
      const blob = Buffer.from('delete me');
      await pushBlob(reg.url, 'test/del', blob);
      const del = await request(`${reg.url}/v2/test/del/blobs/${sha256(blob)}`, { method: 'DELETE' });
      assert.equal(del.statusCode, 405, await del.body.text());
      await reg.stop();
      stopped = true;
      assert.equal(existsSync(reg.dataDir), false, 'dataDir removed');
      await assert.rejects(request(`${reg.url}/v2/`, { dispatcher: new Agent({ connect: { timeout: 2000 } }) }), /ECONNREFUSED|connect/);
    } finally {
      if (!stopped) await reg.stop();
    }
  });

  test('deleteEnabled and relativeUrls are applied', async () => {
    const reg = await startRegistry({ deleteEnabled: true, relativeUrls: true });
    try {
      const post = await request(`${reg.url}/v2/test/rel/blobs/uploads/`, { method: 'POST', headers: { 'content-length': '0' } });
      await post.body.dump();
      assert.equal(post.statusCode, 202);
      assert.match(header(post.headers, 'location') ?? '', /^\/v2\/test\/rel\/blobs\/uploads\//);
      const blob = randomBytes(32);
      await pushBlob(reg.url, 'test/rel', blob);
      const del = await request(`${reg.url}/v2/test/rel/blobs/${sha256(blob)}`, { method: 'DELETE' });
      await del.body.dump();
      assert.equal(del.statusCode, 202);
    } finally {
      await reg.stop();
    }
  });

  test('htpasswd registry: 401 without, 200 with Basic auth', async () => {
    const reg = await startRegistry({ auth: 'htpasswd', users: { alice: 's3cret', bob: 'hunter2' } });
    try {
      assert.equal(reg.username, 'alice');
      assert.equal(reg.password, 's3cret');
      const anon = await get(`${reg.url}/v2/`);
      assert.equal(anon.status, 401);
      assert.equal(header(anon.headers, 'www-authenticate'), 'Basic realm="test"');
      assert.match(anon.text, /UNAUTHORIZED/);
      assert.equal((await get(`${reg.url}/v2/`, { authorization: basic('alice', 'wrong') })).status, 401);
      assert.equal((await get(`${reg.url}/v2/`, { authorization: basic('alice', 's3cret') })).status, 200);
      assert.equal((await get(`${reg.url}/v2/`, { authorization: basic('bob', 'hunter2') })).status, 200);
    } finally {
      await reg.stop();
    }
  });

  test('htpasswd registry: default user has a random password', async () => {
    const reg = await startRegistry({ auth: 'htpasswd' });
    try {
      assert.equal(reg.username, 'testuser');
      assert.ok(reg.password && reg.password.length >= 12);
      assert.equal((await get(`${reg.url}/v2/`, { authorization: basic(reg.username, reg.password) })).status, 200);
    } finally {
      await reg.stop();
    }
  });

  test('token registry: Bearer challenge, GET and POST tokens, push with push scope', async () => {
    const reg = await startRegistry({ auth: 'token', deleteEnabled: true });
    try {
      assert.ok(reg.tokenRealm && reg.tokenServer && reg.username && reg.password);
      const { username, password, tokenRealm } = reg;

      const probe = await get(`${reg.url}/v2/`);
      assert.equal(probe.status, 401);
      const ch = parseChallenge(probe.headers['www-authenticate']);
      assert.equal(ch.scheme, 'Bearer');
      assert.equal(ch.params.realm, tokenRealm);
      assert.equal(ch.params.service, 'test-registry');

      // Anonymous GET token without scope: enough for /v2/.
      const anonTok = await get(`${tokenRealm}?service=${ch.params.service}`);
      assert.equal(anonTok.status, 200, anonTok.text);
      const anon = JSON.parse(anonTok.text) as { token: string; access_token: string; expires_in: number; issued_at: string };
      assert.equal(anon.token, anon.access_token);
      assert.equal(anon.expires_in, 300);
      assert.ok(!Number.isNaN(Date.parse(anon.issued_at)));
      assert.equal((await get(`${reg.url}/v2/`, { authorization: `Bearer ${anon.token}` })).status, 200);
      assert.equal((await get(`${reg.url}/v2/`, { authorization: 'Bearer garbage' })).status, 401);

      // Upload POST challenge carries the push scope.
      const repo = 'test/tok';
      const upNoAuth = await request(`${reg.url}/v2/${repo}/blobs/uploads/`, { method: 'POST', headers: { 'content-length': '0' } });
      await upNoAuth.body.dump();
      assert.equal(upNoAuth.statusCode, 401);
      const upCh = parseChallenge(upNoAuth.headers['www-authenticate']);
      // 2.8 lists the actions in no fixed order (docs say push,pull; pull,push is seen too): compare as sets.
      const [, scopeRepo, scopeActions] = /^repository:(.+):([a-z,*]+)$/.exec(upCh.params.scope ?? '') ?? [];
      assert.equal(scopeRepo, repo);
      assert.deepEqual(scopeActions?.split(',').sort(), ['pull', 'push']);
      const scopeQ = `service=test-registry&scope=${encodeURIComponent(upCh.params.scope)}`;

      // Anonymous tokens only get pull → the push is refused with insufficient_scope.
      const anonPush = JSON.parse((await get(`${tokenRealm}?${scopeQ}`)).text) as { token: string };
      const claims = JSON.parse(Buffer.from(anonPush.token.split('.')[1], 'base64url').toString()) as Record<string, unknown>;
      assert.deepEqual(claims.access, [{ type: 'repository', name: repo, actions: ['pull'] }]);
      const denied = await request(`${reg.url}/v2/${repo}/blobs/uploads/`, {
        method: 'POST',
        headers: { 'content-length': '0', authorization: `Bearer ${anonPush.token}` },
      });
      await denied.body.dump();
      assert.equal(denied.statusCode, 401);
      assert.equal(parseChallenge(denied.headers['www-authenticate']).params.error, 'insufficient_scope');

      // Wrong password → 401 at the token endpoint.
      const bad = await get(`${tokenRealm}?${scopeQ}`, { authorization: basic(username, 'nope') });
      assert.equal(bad.status, 401);

      // GET with Basic → push,pull granted; JWT is ES256 with x5c = the token server's certificate.
      const good = await get(`${tokenRealm}?${scopeQ}`, { authorization: basic(username, password) });
      assert.equal(good.status, 200, good.text);
      const tok = (JSON.parse(good.text) as { token: string }).token;
      const [h64, c64, s64] = tok.split('.');
      const hdr = JSON.parse(Buffer.from(h64, 'base64url').toString()) as { alg: string; typ: string; x5c: string[] };
      assert.equal(hdr.alg, 'ES256');
      assert.equal(hdr.typ, 'JWT');
      const cert = new X509Certificate(readFileSync(reg.tokenServer.certFile));
      assert.equal(hdr.x5c[0], cert.raw.toString('base64'));
      assert.ok(
        verify('sha256', Buffer.from(`${h64}.${c64}`), { key: createPublicKey(cert.publicKey.export({ type: 'spki', format: 'pem' })), dsaEncoding: 'ieee-p1363' }, Buffer.from(s64, 'base64url')),
        'signature verifies',
      );
      const goodClaims = JSON.parse(Buffer.from(c64, 'base64url').toString()) as Record<string, unknown>;
      assert.equal(goodClaims.iss, 'test-issuer');
      assert.equal(goodClaims.aud, 'test-registry');
      assert.equal(goodClaims.sub, username);
      for (const k of ['exp', 'nbf', 'iat', 'jti']) assert.ok(goodClaims[k] !== undefined, `claim ${k}`);
      const granted = goodClaims.access as Array<{ type: string; name: string; actions: string[] }>;
      assert.equal(granted.length, 1);
      assert.deepEqual({ ...granted[0], actions: [...granted[0].actions].sort() }, { type: 'repository', name: repo, actions: ['pull', 'push'] });

      const blob = Buffer.from('hello token auth');
      await pushBlob(reg.url, repo, blob, { authorization: `Bearer ${tok}` });
      const head = await request(`${reg.url}/v2/${repo}/blobs/${sha256(blob)}`, { method: 'HEAD', headers: { authorization: `Bearer ${tok}` } });
      await head.body.dump();
      assert.equal(head.statusCode, 200);

      // POST (OAuth2 password grant) with a refresh token, then the refresh_token grant.
      const form = (p: Record<string, string>) =>
        request(tokenRealm, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams(p).toString(),
        });
      const pw = await form({
        grant_type: 'password',
        username,
        password,
        client_id: 'modctl-test',
        service: 'test-registry',
        scope: `repository:${repo}:pull`,
        access_type: 'offline',
      });
      const pwBody = (await pw.body.json()) as { access_token: string; refresh_token?: string; scope?: string };
      assert.equal(pw.statusCode, 200);
      assert.ok(pwBody.refresh_token, 'refresh_token issued');
      assert.equal(pwBody.scope, `repository:${repo}:pull`);
      const badPw = await form({ grant_type: 'password', username, password: 'x', client_id: 'modctl-test', service: 'test-registry' });
      await badPw.body.dump();
      assert.equal(badPw.statusCode, 401);
      const rt = await form({
        grant_type: 'refresh_token',
        refresh_token: pwBody.refresh_token,
        client_id: 'modctl-test',
        service: 'test-registry',
        scope: `repository:${repo}:pull,push`,
      });
      const rtBody = (await rt.body.json()) as { access_token: string };
      assert.equal(rt.statusCode, 200);
      const blob2 = Buffer.from('pushed with a refreshed token');
      await pushBlob(reg.url, repo, blob2, { authorization: `Bearer ${rtBody.access_token}` });
      const badRt = await form({ grant_type: 'refresh_token', refresh_token: 'bogus', client_id: 'modctl-test', service: 'test-registry' });
      await badRt.body.dump();
      assert.equal(badRt.statusCode, 401);

      const reqs = reg.tokenServer.requests;
      assert.deepEqual(
        reqs.map((r) => `${r.method} ${r.status}`),
        ['GET 200', 'GET 200', 'GET 401', 'GET 200', 'POST 200', 'POST 401', 'POST 200', 'POST 401'],
      );
      assert.deepEqual(
        reqs.map((r) => r.authorization?.split(' ')[0] ?? '-'),
        ['-', '-', 'Basic', 'Basic', '-', '-', '-', '-'],
      );
      assert.deepEqual(reqs[3].query.getAll('scope'), [upCh.params.scope]);
      assert.equal(reqs[4].form?.get('grant_type'), 'password');
      assert.equal(reqs[6].form?.get('grant_type'), 'refresh_token');
    } finally {
      await reg.stop();
    }
  });

  test('token server: postNotFound makes POST 404 while GET works', async () => {
    const ts = await startTokenServer({ users: { u: 'p' }, postNotFound: true, tokenFields: 'token' });
    try {
      const post = await request(ts.url, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: 'grant_type=password&username=u&password=p&client_id=x&service=test-registry',
      });
      await post.body.dump();
      assert.equal(post.statusCode, 404);
      const g = await get(`${ts.url}?service=test-registry&scope=repository:a/b:pull,push`, { authorization: basic('u', 'p') });
      assert.equal(g.status, 200);
      const body = JSON.parse(g.text) as Record<string, unknown>;
      assert.equal(typeof body.token, 'string');
      assert.equal(body.access_token, undefined);
      assert.deepEqual(
        ts.requests.map((r) => [r.method, r.status]),
        [
          ['POST', 404],
          ['GET', 200],
        ],
      );
    } finally {
      await ts.stop();
    }
  });

  test('TLS registry: reachable with the CA, refused without it', async () => {
    const reg = await startRegistry({ tls: true });
    const withCa = new Agent({ connect: { ca: readFileSync(reg.caFile ?? '') } });
    const noCa = new Agent();
    try {
      assert.ok(reg.caFile);
      assert.equal(reg.url, `https://${reg.host}`);
      assert.equal((await get(`${reg.url}/v2/`, {}, withCa)).status, 200);
      const port = reg.host.split(':')[1];
      assert.equal((await get(`https://localhost:${port}/v2/`, {}, withCa)).status, 200, 'DNS:localhost SAN');
      await assert.rejects(get(`${reg.url}/v2/`, {}, noCa), (err: Error & { code?: string; cause?: { code?: string } }) => {
        const code = `${err.code ?? ''} ${err.cause?.code ?? ''} ${err.message}`;
        assert.match(code, /CERT|SIGNATURE|VERIFY|self.signed|issuer/i);
        return true;
      });
    } finally {
      await withCa.close();
      await noCa.close();
      await reg.stop();
    }
  });

  test('missing docker-registry gives an install hint', async () => {
    const prev = process.env.DOCKER_REGISTRY_BIN;
    process.env.DOCKER_REGISTRY_BIN = 'docker-registry-definitely-missing';
    try {
      await assert.rejects(startRegistry(), /install the `docker-registry` Debian package/);
    } finally {
      if (prev === undefined) delete process.env.DOCKER_REGISTRY_BIN;
      else process.env.DOCKER_REGISTRY_BIN = prev;
    }
  });
});

describe('startFaultProxy', () => {
  let reg: RegistryHandle;
  let proxy: FaultProxy;
  const repo = 'test/fault';
  const blob = randomBytes(256 * 1024);
  const digest = sha256(blob);
  let blobPath = '';

  before(async () => {
    reg = await startRegistry();
    await pushBlob(reg.url, repo, blob);
    blobPath = `/v2/${repo}/blobs/${digest}`;
    proxy = await startFaultProxy(reg.url);
  });
  after(async () => {
    await proxy?.stop();
    await reg?.stop();
  });

  test('passes requests through and rewrites Location to the proxy', async () => {
    proxy.setPlan();
    proxy.requests.length = 0;
    assert.match(proxy.host, /^127\.0\.0\.1:\d+$/);
    const small = randomBytes(1000);
    const { location } = await pushBlob(proxy.url, repo, small);
    assert.ok(location.startsWith(`${proxy.url}/v2/${repo}/blobs/uploads/`), location);
    const r = await request(`${proxy.url}${blobPath}`);
    assert.equal(r.statusCode, 200);
    assert.equal(header(r.headers, 'docker-content-digest'), digest);
    assert.equal(header(r.headers, 'content-length'), String(blob.length));
    const { data, error } = await drain(r.body);
    assert.equal(error, undefined);
    assert.ok(data.equals(blob));
    const ranged = await request(`${proxy.url}${blobPath}`, { headers: { range: 'bytes=10-19' } });
    assert.equal(ranged.statusCode, 206);
    assert.ok(Buffer.from(await ranged.body.arrayBuffer()).equals(blob.subarray(10, 20)));
    assert.deepEqual(
      proxy.requests.map((x) => [x.method, x.status]),
      [
        ['POST', 202],
        ['PUT', 201],
        ['GET', 200],
        ['GET', 206],
      ],
    );
  });

  test('status fault: returns the status once, honouring skip and times', async () => {
    proxy.requests.length = 0;
    proxy.setPlan({
      match: { method: 'GET', path: /\/blobs\/sha256:/ },
      fault: { kind: 'status', status: 503, headers: { 'retry-after': '1', 'content-type': 'text/plain' }, body: 'busy' },
    });
    const head = await request(`${proxy.url}${blobPath}`, { method: 'HEAD' });
    await head.body.dump();
    assert.equal(head.statusCode, 200, 'method does not match');
    const first = await get(`${proxy.url}${blobPath}`);
    assert.equal(first.status, 503);
    assert.equal(header(first.headers, 'retry-after'), '1');
    assert.equal(first.text, 'busy');
    assert.equal((await get(`${proxy.url}${blobPath}`)).status, 200, 'times defaults to 1');

    proxy.setPlan({ match: { path: /\/blobs\// }, skip: 1, times: 2, fault: { kind: 'status', status: 500 } });
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push((await get(`${proxy.url}${blobPath}`)).status);
    assert.deepEqual(statuses, [200, 500, 500, 200]);
    assert.deepEqual(
      proxy.requests.map((r) => r.fault ?? '-'),
      ['-', 'status', '-', '-', 'status', 'status', '-'],
    );
  });

  test('reset-after: the blob GET breaks after N body bytes', async () => {
    proxy.setPlan({ match: { method: 'GET', path: /\/blobs\// }, fault: { kind: 'reset-after', bytes: 1000 } });
    const r = await request(`${proxy.url}${blobPath}`);
    assert.equal(r.statusCode, 200);
    assert.equal(header(r.headers, 'content-length'), String(blob.length));
    const { data, error } = await drain(r.body);
    assert.ok(error, 'read fails');
    assert.equal(data.length, 1000);
    assert.ok(data.equals(blob.subarray(0, 1000)));
    // Fault consumed: the next GET is whole.
    const again = await drain((await request(`${proxy.url}${blobPath}`)).body);
    assert.equal(again.error, undefined);
    assert.equal(again.data.length, blob.length);
  });

  test('truncate-after: declared Content-Length but the body ends early', async () => {
    proxy.setPlan({ match: { path: /\/blobs\// }, fault: { kind: 'truncate-after', bytes: 70_000 } });
    const r = await request(`${proxy.url}${blobPath}`);
    assert.equal(r.statusCode, 200);
    assert.equal(header(r.headers, 'content-length'), String(blob.length));
    const { data, error } = await drain(r.body);
    assert.ok(error, 'short body is an error for the client');
    assert.equal(data.length, 70_000);
    assert.ok(data.equals(blob.subarray(0, 70_000)));
  });

  test('corrupt: exactly one byte of the body is flipped', async () => {
    proxy.setPlan({ match: { path: /\/blobs\// }, fault: { kind: 'corrupt', atByte: 12_345 } });
    const r = await request(`${proxy.url}${blobPath}`);
    const { data, error } = await drain(r.body);
    assert.equal(error, undefined);
    assert.equal(data.length, blob.length);
    assert.notEqual(sha256(data), digest);
    const diffs: number[] = [];
    for (let i = 0; i < data.length; i++) if (data[i] !== blob[i]) diffs.push(i);
    assert.deepEqual(diffs, [12_345]);
    assert.equal(data[12_345], blob[12_345] ^ 0xff);
  });

  test('trickle: the body is throttled but intact', async () => {
    proxy.setPlan({ match: { path: /\/blobs\// }, fault: { kind: 'trickle', bytesPerSec: 1024 * 1024 } });
    const t0 = Date.now();
    const r = await request(`${proxy.url}${blobPath}`);
    const { data, error } = await drain(r.body);
    const elapsed = Date.now() - t0;
    assert.equal(error, undefined);
    assert.ok(data.equals(blob));
    assert.ok(elapsed >= 200, `256 KiB at 1 MiB/s took only ${elapsed} ms`);
  });

  test('reset-request-after: an upload is cut after N request bytes', async () => {
    proxy.requests.length = 0;
    proxy.setPlan({ match: { method: 'PUT', path: /\/blobs\/uploads\// }, fault: { kind: 'reset-request-after', bytes: 10_000 } });
    const up = randomBytes(512 * 1024);
    const dispatcher = new Agent();
    try {
      await assert.rejects(pushBlob(proxy.url, 'test/cut', up, {}, dispatcher), (err: Error) => {
        assert.doesNotMatch(err.message, /upload PUT →/, 'the PUT must fail at the socket level, not with a status');
        return true;
      });
      const last = proxy.requests.at(-1);
      assert.deepEqual(last && [last.method, last.status, last.fault], ['PUT', 0, 'reset-request-after']);
      const head = await request(`${reg.url}/v2/test/cut/blobs/${sha256(up)}`, { method: 'HEAD' });
      await head.body.dump();
      assert.equal(head.statusCode, 404, 'the registry never got the whole blob');
      // Fault consumed: a fresh upload goes through.
      await pushBlob(proxy.url, 'test/cut', up, {}, dispatcher);
    } finally {
      await dispatcher.close();
    }
  });
});
