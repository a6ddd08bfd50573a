/**
 * Auth and retry exchanges against undici's MockAgent (no network: disableNetConnect; every interceptor must be
 * used: assertNoPendingInterceptors).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MockAgent } from 'undici';
import { AuthError, RegistryError } from '../../../src/errors.js';
import { MT_OCI_MANIFEST } from '../../../src/oci/media-types.js';
import { parseReference } from '../../../src/oci/reference.js';
import { fetchManifest, listTags, RegistryClient } from '../../../src/remote/index.js';
import { sha256 } from './fake-registry.js';

const REG = 'https://reg.example';
const AUTH = 'https://auth.example';
const MANIFEST = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MT_OCI_MANIFEST, config: { mediaType: 'x', digest: sha256('c'), size: 1 }, layers: [] }));
const CHALLENGE = `Bearer realm="${AUTH}/token",service="reg.example"`;

function mockAgent(t: { after: (fn: () => Promise<void> | void) => void }): MockAgent {
  const m = new MockAgent();
  m.disableNetConnect();
  t.after(async () => {
    await m.close();
  });
  return m;
}

function env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { HOME: '/nonexistent-home', MODCTL_RETRY_BASE_MS: '1', ...extra };
}

const manifestReply = { headers: { 'content-type': MT_OCI_MANIFEST, 'docker-content-digest': sha256(MANIFEST) } };

test('OAuth2 POST with an identity token (refresh_token grant, client_id=modctl, one space-joined scope)', async (t) => {
  const m = mockAgent(t);
  const reg = m.get(REG);
  const auth = m.get(AUTH);
  // the manifest GET is the client's first request: it meets the challenge itself (no separate GET /v2/ ping)
  reg.intercept({ path: '/v2/team/m/manifests/v1', method: 'GET', headers: (h) => !('authorization' in h) }).reply(401, '', { headers: { 'www-authenticate': CHALLENGE } });
  const forms: URLSearchParams[] = [];
  auth
    .intercept({
      path: '/token',
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    })
    .reply((opts) => {
      forms.push(new URLSearchParams(String(opts.body)));
      return { statusCode: 200, data: { access_token: 'AT-1', expires_in: 300 } };
    });
  reg.intercept({ path: '/v2/team/m/manifests/v1', method: 'GET', headers: { authorization: 'Bearer AT-1' } }).reply(200, MANIFEST, manifestReply);
  const cfg = JSON.stringify({ auths: { 'reg.example': { identitytoken: 'REFRESH-XYZ' } } });
  const r = await fetchManifest(parseReference('reg.example/team/m:v1'), { dispatcher: m, env: env({ DOCKER_AUTH_CONFIG: cfg }) });
  assert.equal(r.descriptor.digest, sha256(MANIFEST));
  assert.equal(forms.length, 1, 'one token, for the scope the request needs');
  const form = forms[0];
  assert.equal(form.get('grant_type'), 'refresh_token');
  assert.equal(form.get('refresh_token'), 'REFRESH-XYZ');
  assert.equal(form.get('client_id'), 'modctl');
  assert.equal(form.get('service'), 'reg.example');
  assert.equal(form.get('scope'), 'repository:team/m:pull');
  m.assertNoPendingInterceptors();
});

test('token endpoint that only answers GET: POST → 404 → GET fallback; the token is cached per scope set', async (t) => {
  const m = mockAgent(t);
  const reg = m.get(REG);
  const auth = m.get(AUTH);
  reg.intercept({ path: '/v2/team/m/manifests/v1', method: 'GET', headers: (h) => !('authorization' in h) }).reply(401, '', { headers: { 'www-authenticate': CHALLENGE } });
  auth.intercept({ path: '/token', method: 'POST', body: (b) => b.includes('scope=repository%3Ateam%2Fm%3Apull') }).reply(404, 'not found');
  auth.intercept({ path: `/token?service=reg.example&scope=${encodeURIComponent('repository:team/m:pull')}`, method: 'GET' }).reply(200, { token: 'T1', access_token: '' });
  // two requests, one token fetch for that scope set
  reg.intercept({ path: '/v2/team/m/manifests/v1', method: 'GET', headers: { authorization: 'Bearer T1' } }).reply(200, MANIFEST, manifestReply).times(1);
  reg.intercept({ path: '/v2/team/m/tags/list', method: 'GET', headers: { authorization: 'Bearer T1' } }).reply(200, { name: 'team/m', tags: ['v1'] });
  const client = new RegistryClient('reg.example', { dispatcher: m, env: env({ DOCKER_AUTH_CONFIG: JSON.stringify({ auths: { 'reg.example': { identitytoken: 'R' } } }) }) });
  await client.getManifest('team/m', 'v1');
  assert.deepEqual(await client.listTags('team/m'), ['v1']);
  m.assertNoPendingInterceptors();
});

test('anonymous Bearer token, then insufficient_scope asks once more with the union of scopes, then gives up', async (t) => {
  const m = mockAgent(t);
  const reg = m.get(REG);
  const auth = m.get(AUTH);
  reg.intercept({ path: '/v2/a/manifests/v1', method: 'GET', headers: (h) => !('authorization' in h) }).reply(401, '', { headers: { 'www-authenticate': `${CHALLENGE},scope="repository:a:pull"` } });
  auth.intercept({ path: `/token?service=reg.example&scope=${encodeURIComponent('repository:a:pull')}`, method: 'GET', headers: (h) => !('authorization' in h) }).reply(200, { token: 'ANON' });
  reg
    .intercept({ path: '/v2/a/manifests/v1', method: 'GET', headers: { authorization: 'Bearer ANON' } })
    .reply(401, '{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}', {
      headers: { 'www-authenticate': `${CHALLENGE},scope="repository:a:pull",error="insufficient_scope"`, 'content-type': 'application/json' },
    });
  const err = await fetchManifest(parseReference('reg.example/a:v1'), { dispatcher: m, env: env() }).catch((e) => e);
  assert.ok(err instanceof AuthError, String(err));
  assert.equal(err.status, 401);
  assert.deepEqual(err.ociCodes, ['UNAUTHORIZED']);
  assert.match(err.hint ?? '', /modctl login reg\.example/);
  m.assertNoPendingInterceptors();
});

test('invalid_token drops the cached token and refetches once', async (t) => {
  const m = mockAgent(t);
  const reg = m.get(REG);
  const auth = m.get(AUTH);
  reg.intercept({ path: '/v2/a/tags/list', method: 'GET', headers: (h) => !('authorization' in h) }).reply(401, '', { headers: { 'www-authenticate': CHALLENGE } });
  const scoped = `/token?service=reg.example&scope=${encodeURIComponent('repository:a:pull')}`;
  auth.intercept({ path: scoped, method: 'GET' }).reply(200, { token: 'OLD' });
  reg.intercept({ path: '/v2/a/tags/list', method: 'GET', headers: { authorization: 'Bearer OLD' } }).reply(401, '', { headers: { 'www-authenticate': `${CHALLENGE},error="invalid_token"` } });
  auth.intercept({ path: scoped, method: 'GET' }).reply(200, { token: 'NEW' });
  reg.intercept({ path: '/v2/a/tags/list', method: 'GET', headers: { authorization: 'Bearer NEW' } }).reply(200, { name: 'a', tags: null });
  assert.deepEqual(await listTags(parseReference('reg.example/a'), { dispatcher: m, env: env() }), []);
  m.assertNoPendingInterceptors();
});

test('Basic challenge: credentials sent on replay; wrong credentials → AuthError without looping', async (t) => {
  const m = mockAgent(t);
  const reg = m.get(REG);
  reg.intercept({ path: '/v2/a/tags/list', method: 'GET', headers: (h) => !('authorization' in h) }).reply(401, '', { headers: { 'www-authenticate': 'Basic realm="r"' } });
  const basic = 'Basic ' + Buffer.from('u:wrong').toString('base64');
  reg.intercept({ path: '/v2/a/tags/list', method: 'GET', headers: { authorization: basic } }).reply(401, '{"errors":[{"code":"UNAUTHORIZED"}]}', { headers: { 'www-authenticate': 'Basic realm="r"' } });
  const cfg = JSON.stringify({ auths: { 'https://reg.example/v1/': { auth: Buffer.from('u:wrong').toString('base64') } } });
  const err = await listTags(parseReference('reg.example/a'), { dispatcher: m, env: env({ DOCKER_AUTH_CONFIG: cfg }) }).catch((e) => e);
  assert.ok(err instanceof AuthError, String(err));
  assert.ok(!err.message.includes('wrong'), 'password never in messages');
  m.assertNoPendingInterceptors();
});

test('429 with Retry-After is honoured (seconds), then success', async (t) => {
  const m = mockAgent(t);
  const reg = m.get(REG);
  reg.intercept({ path: '/v2/a/manifests/v1', method: 'GET' }).reply(429, '{"errors":[{"code":"TOOMANYREQUESTS"}]}', { headers: { 'retry-after': '1' } });
  reg.intercept({ path: '/v2/a/manifests/v1', method: 'GET' }).reply(200, MANIFEST, manifestReply);
  const t0 = Date.now();
  const r = await fetchManifest(parseReference('reg.example/a:v1'), { dispatcher: m, env: env() });
  const waited = Date.now() - t0;
  assert.equal(r.descriptor.digest, sha256(MANIFEST));
  assert.ok(waited >= 950, `waited ${waited} ms for Retry-After: 1`);
  m.assertNoPendingInterceptors();
});

test('429 with an HTTP-date Retry-After beyond the limit is reported, not waited for', async (t) => {
  const m = mockAgent(t);
  const reg = m.get(REG);
  const later = new Date(Date.now() + 6 * 3600_000).toUTCString();
  reg.intercept({ path: '/v2/a/manifests/v1', method: 'GET' }).reply(429, '{"errors":[{"code":"TOOMANYREQUESTS","message":"rate limit"}]}', { headers: { 'retry-after': later } });
  const err = await fetchManifest(parseReference('reg.example/a:v1'), { dispatcher: m, env: env() }).catch((e) => e);
  assert.ok(err instanceof RegistryError);
  assert.equal(err.status, 429);
  assert.match(err.hint ?? '', /rate limited/);
  m.assertNoPendingInterceptors();
});

test('5xx burst then success (fast backoff via MODCTL_RETRY_BASE_MS); network errors retried too', async (t) => {
  const m = mockAgent(t);
  const reg = m.get(REG);
  reg.intercept({ path: '/v2/a/manifests/v1', method: 'GET' }).replyWithError(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }));
  reg.intercept({ path: '/v2/a/manifests/v1', method: 'GET' }).reply(503, 'busy');
  reg.intercept({ path: '/v2/a/manifests/v1', method: 'GET' }).reply(502, '<html>bad gateway</html>', { headers: { 'content-type': 'text/html' } });
  reg.intercept({ path: '/v2/a/manifests/v1', method: 'GET' }).reply(504, '');
  reg.intercept({ path: '/v2/a/manifests/v1', method: 'GET' }).reply(200, MANIFEST, manifestReply);
  const r = await fetchManifest(parseReference('reg.example/a:v1'), { dispatcher: m, env: env() });
  assert.equal(r.descriptor.digest, sha256(MANIFEST));
  m.assertNoPendingInterceptors();
});

test('5xx beyond the attempt budget fails with the last status', async (t) => {
  const m = mockAgent(t);
  const reg = m.get(REG);
  reg.intercept({ path: '/v2/a/manifests/v1', method: 'GET' }).reply(503, '{"errors":[{"code":"UNAVAILABLE"}]}').times(3);
  const err = await fetchManifest(parseReference('reg.example/a:v1'), { dispatcher: m, env: env({ MODCTL_RETRY_ATTEMPTS: '3' }) }).catch((e) => e);
  assert.ok(err instanceof RegistryError);
  assert.equal(err.status, 503);
  assert.deepEqual(err.ociCodes, ['UNAVAILABLE']);
  m.assertNoPendingInterceptors();
});

test('non-retried 4xx: 400/404/405 fail after one request; text bodies are shown, HTML is not', async (t) => {
  const m = mockAgent(t);
  const reg = m.get(REG);
  reg.intercept({ path: '/v2/a/manifests/v1', method: 'GET' }).reply(404, '404 page not found\n', { headers: { 'content-type': 'text/plain' } });
  reg.intercept({ path: '/v2/a/manifests/v2', method: 'GET' }).reply(400, '<html><body>nope</body></html>', { headers: { 'content-type': 'text/html' } });
  const client = new RegistryClient('reg.example', { dispatcher: m, env: env() });
  const e1 = await client.getManifest('a', 'v1').catch((e) => e);
  assert.equal(e1.status, 404);
  assert.match(e1.message, /404 page not found/);
  const e2 = await client.getManifest('a', 'v2').catch((e) => e);
  assert.equal(e2.status, 400);
  assert.ok(!e2.message.includes('<html>'));
  m.assertNoPendingInterceptors();
});

test('Warning headers are passed on once (deduplicated) and redacted', async (t) => {
  const m = mockAgent(t);
  const reg = m.get(REG);
  const w = { warning: '299 - "this registry is deprecated, see https://x/y?token=abc"' };
  reg.intercept({ path: '/v2/a/tags/list', method: 'GET' }).reply(200, { tags: ['b', 'a'] }, { headers: w }).times(2);
  const warnings: string[] = [];
  const client = new RegistryClient('reg.example', { dispatcher: m, env: env(), onWarning: (s) => warnings.push(s) });
  assert.deepEqual(await client.listTags('a'), ['a', 'b']);
  assert.deepEqual(await client.listTags('a'), ['a', 'b']);
  assert.deepEqual(warnings, ['reg.example: this registry is deprecated, see https://x/y?token=REDACTED']);
  m.assertNoPendingInterceptors();
});

test('credentials are never sent to an absolute Location on another origin', async (t) => {
  const m = mockAgent(t);
  const reg = m.get(REG);
  const store = m.get('https://uploads.example');
  reg.intercept({ path: '/v2/', method: 'GET' }).reply(200, '{}');
  const client = new RegistryClient('reg.example', { dispatcher: m, env: env(), credentials: { username: 'u', password: 'p' } });
  // learn Basic from a challenge on the uploads POST
  reg.intercept({ path: '/v2/a/blobs/uploads/', method: 'POST' }).reply(401, '', { headers: { 'www-authenticate': 'Basic realm="r"' } });
  reg
    .intercept({ path: '/v2/a/blobs/uploads/', method: 'POST', headers: { authorization: 'Basic ' + Buffer.from('u:p').toString('base64') } })
    .reply(202, '', { headers: { location: 'https://uploads.example/up/1?sig=s' } });
  store.intercept({ path: (p) => p.startsWith('/up/1?') && p.includes('sig=s') && p.includes(`digest=${encodeURIComponent(sha256('hello'))}`), method: 'PUT', headers: (h) => !('authorization' in h) }).reply(201, '');
  const { Readable } = await import('node:stream');
  const data = Buffer.from('hello');
  const r = await client.uploadBlob('a', { mediaType: 'x', digest: sha256(data), size: data.length }, () => Readable.from([data]));
  assert.equal(r.style, 'monolithic');
  m.assertNoPendingInterceptors();
});

test('redirects: at most 10 hops, then a RegistryError', async (t) => {
  const m = mockAgent(t);
  const reg = m.get(REG);
  reg.intercept({ path: (p) => p.startsWith('/v2/a/blobs/') || p.startsWith('/hop/'), method: 'GET' }).reply(302, '', { headers: { location: '/hop/x' } }).times(11);
  const client = new RegistryClient('reg.example', { dispatcher: m, env: env() });
  await assert.rejects(client.getBlob('a', sha256('x')), /more than 10 redirects/);
  m.assertNoPendingInterceptors();
});

test('a token service refusing the scope-less ping token does not block scoped requests', async (t) => {
  // A client whose first request is a POST (an upload) pings GET /v2/ first, to learn the scheme before any body.
  const m = mockAgent(t);
  const reg = m.get(REG);
  const auth = m.get(AUTH);
  reg.intercept({ path: '/v2/', method: 'GET' }).reply(401, '', { headers: { 'www-authenticate': CHALLENGE } });
  auth.intercept({ path: '/token?service=reg.example', method: 'GET' }).reply(401, '{"details":"scope required"}');
  const scope = encodeURIComponent('repository:a:pull,push');
  auth.intercept({ path: `/token?service=reg.example&scope=${scope}`, method: 'GET' }).reply(200, { token: 'S' });
  reg.intercept({ path: '/v2/a/blobs/uploads/', method: 'POST', headers: { authorization: 'Bearer S' } }).reply(202, '', { headers: { location: '/v2/a/blobs/uploads/u1' } });
  const client = new RegistryClient('reg.example', { dispatcher: m, env: env() });
  const s = await client.startUpload('a', 'blob');
  assert.match(s.location, /\/v2\/a\/blobs\/uploads\/u1$/);
  m.assertNoPendingInterceptors();
});

test('the first request without a body stands in for the ping; requests made meanwhile wait for its answer', async (t) => {
  const m = mockAgent(t);
  const reg = m.get(REG);
  const auth = m.get(AUTH);
  const calls: string[] = [];
  reg.intercept({ path: '/v2/a/manifests/v1', method: 'GET', headers: (h) => !('authorization' in h) }).reply(() => {
    calls.push('manifest 401');
    return { statusCode: 401, data: '', responseOptions: { headers: { 'www-authenticate': CHALLENGE } } };
  });
  auth.intercept({ path: `/token?service=reg.example&scope=${encodeURIComponent('repository:a:pull')}`, method: 'GET' }).reply(() => {
    calls.push('token');
    return { statusCode: 200, data: { token: 'T' } };
  });
  reg.intercept({ path: '/v2/a/manifests/v1', method: 'GET', headers: { authorization: 'Bearer T' } }).reply(200, MANIFEST, manifestReply);
  reg.intercept({ path: '/v2/a/tags/list', method: 'GET', headers: { authorization: 'Bearer T' } }).reply(() => {
    calls.push('tags');
    return { statusCode: 200, data: { tags: ['v1'] } };
  });
  const client = new RegistryClient('reg.example', { dispatcher: m, env: env() });
  const [man, tags] = await Promise.all([client.getManifest('a', 'v1'), client.listTags('a')]);
  assert.equal(man.descriptor.digest, sha256(MANIFEST));
  assert.deepEqual(tags, ['v1']);
  assert.deepEqual(calls, ['manifest 401', 'token', 'tags'], 'the tag list waited for the first answer and went out with the token');
  m.assertNoPendingInterceptors();
});

test('a registry hiding a repository from anonymous requests (404, no challenge) is asked again with credentials', async (t) => {
  const m = mockAgent(t);
  const reg = m.get(REG);
  const basic = 'Basic ' + Buffer.from('u:p').toString('base64');
  reg.intercept({ path: '/v2/private/m/manifests/v1', method: 'GET', headers: (h) => !('authorization' in h) }).reply(404, '{"errors":[{"code":"NAME_UNKNOWN"}]}');
  reg.intercept({ path: '/v2/', method: 'GET', headers: (h) => !('authorization' in h) }).reply(401, '', { headers: { 'www-authenticate': 'Basic realm="r"' } });
  reg.intercept({ path: '/v2/', method: 'GET', headers: { authorization: basic } }).reply(200, '{}');
  reg.intercept({ path: '/v2/private/m/manifests/v1', method: 'GET', headers: { authorization: basic } }).reply(200, MANIFEST, manifestReply);
  const cfg = JSON.stringify({ auths: { 'reg.example': { auth: Buffer.from('u:p').toString('base64') } } });
  const r = await fetchManifest(parseReference('reg.example/private/m:v1'), { dispatcher: m, env: env({ DOCKER_AUTH_CONFIG: cfg }) });
  assert.equal(r.descriptor.digest, sha256(MANIFEST));
  m.assertNoPendingInterceptors();
});

test('without credentials, a 404 to the first request is the answer (no ping, no second try)', async (t) => {
  const m = mockAgent(t);
  const reg = m.get(REG);
  reg.intercept({ path: '/v2/a/manifests/v9', method: 'GET' }).reply(404, '{"errors":[{"code":"MANIFEST_UNKNOWN"}]}');
  const err = await fetchManifest(parseReference('reg.example/a:v9'), { dispatcher: m, env: env() }).catch((e) => e);
  assert.ok(err instanceof RegistryError);
  assert.equal(err.status, 404);
  m.assertNoPendingInterceptors();
});
