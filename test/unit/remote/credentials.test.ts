/**
 * Docker config.json and credential helpers: lookup precedence, Docker Hub key normalisation, the helper protocol
 * through a fake `docker-credential-test` script found via opts.env.PATH, and login/logout end to end against the
 * fake registry.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { AuthError } from '../../../src/errors.js';
import { parseReference } from '../../../src/oci/reference.js';
import { credentialServerUrl, getCredentials, normalizeRegistryKey } from '../../../src/remote/auth/credentials.js';
import { listTags, login, logout } from '../../../src/remote/index.js';
import { FakeRegistry } from './fake-registry.js';
import { testAgent, tmpDir } from './helpers.js';

const HELPER = `#!/usr/bin/env node
const fs = require('fs');
const path = require('path');
const db = path.join(__dirname, 'store.json');
const action = process.argv[2];
let input = '';
process.stdin.on('data', (d) => (input += d));
process.stdin.on('end', () => {
  const data = fs.existsSync(db) ? JSON.parse(fs.readFileSync(db, 'utf8')) : {};
  fs.appendFileSync(path.join(__dirname, 'calls.log'), action + ' ' + (action === 'store' ? JSON.parse(input).ServerURL : input.trim()) + '\\n');
  const key = input.trim();
  if (action === 'get') {
    const e = data[key];
    if (!e) { process.stdout.write('credentials not found in native keychain\\n'); process.exit(1); }
    process.stdout.write(JSON.stringify({ ServerURL: key, Username: e.Username, Secret: e.Secret }));
  } else if (action === 'store') {
    const j = JSON.parse(input);
    data[j.ServerURL] = j;
    fs.writeFileSync(db, JSON.stringify(data));
  } else if (action === 'erase') {
    if (!data[key]) { process.stdout.write('credentials not found in native keychain\\n'); process.exit(1); }
    delete data[key];
    fs.writeFileSync(db, JSON.stringify(data));
  } else { process.stdout.write('unknown action'); process.exit(1); }
});
`;

async function helperEnv(t: Parameters<typeof tmpDir>[0]) {
  const dir = await tmpDir(t);
  const bin = path.join(dir, 'bin');
  await fsp.mkdir(bin);
  await fsp.writeFile(path.join(bin, 'docker-credential-test'), HELPER, { mode: 0o755 });
  const home = path.join(dir, 'home');
  const env: NodeJS.ProcessEnv = { HOME: home, PATH: `${bin}${path.delimiter}${path.dirname(process.execPath)}`, MODCTL_RETRY_BASE_MS: '1' };
  assert.ok(!(process.env.PATH ?? '').includes(bin), 'the helper is only reachable through opts.env.PATH');
  return { dir, bin, home, env };
}

async function writeConfig(home: string, config: unknown) {
  await fsp.mkdir(path.join(home, '.docker'), { recursive: true });
  await fsp.writeFile(path.join(home, '.docker', 'config.json'), JSON.stringify(config));
}

test('registry keys: Docker Hub aliases fold into one, schemes and paths are stripped', () => {
  for (const k of ['https://index.docker.io/v1/', 'index.docker.io', 'docker.io', 'registry-1.docker.io', 'HTTPS://Index.Docker.IO/v1/']) {
    assert.equal(normalizeRegistryKey(k), 'docker.io', k);
  }
  assert.equal(normalizeRegistryKey('https://localhost:5000/v2/'), 'localhost:5000');
  assert.equal(credentialServerUrl('docker.io'), 'https://index.docker.io/v1/');
  assert.equal(credentialServerUrl('ghcr.io'), 'ghcr.io');
});

test('config.json auths: auth base64, username/password fields, identitytoken, registrytoken; DOCKER_CONFIG wins over HOME', async (t) => {
  const dir = await tmpDir(t);
  const home = path.join(dir, 'home');
  await writeConfig(home, {
    auths: {
      'https://index.docker.io/v1/': { auth: Buffer.from('hub:pa:ss\0').toString('base64') },
      'https://reg.example': { username: 'u2', password: 'p2' },
      'id.example': { identitytoken: 'REFRESH' },
      'rt.example': { registrytoken: 'READY' },
      'empty.example': {},
    },
  });
  const env = { HOME: home };
  assert.deepEqual(await getCredentials('docker.io', env), { username: 'hub', password: 'pa:ss' });
  assert.deepEqual(await getCredentials('registry-1.docker.io', env), { username: 'hub', password: 'pa:ss' });
  assert.deepEqual(await getCredentials('reg.example', env), { username: 'u2', password: 'p2' });
  assert.deepEqual(await getCredentials('id.example', env), { identityToken: 'REFRESH' });
  assert.deepEqual(await getCredentials('rt.example', env), { registryToken: 'READY' });
  assert.equal(await getCredentials('empty.example', env), undefined);
  assert.equal(await getCredentials('other.example', env), undefined);
  const alt = path.join(dir, 'alt');
  await fsp.mkdir(alt);
  await fsp.writeFile(path.join(alt, 'config.json'), JSON.stringify({ auths: { 'reg.example': { auth: Buffer.from('x:y').toString('base64') } } }));
  assert.deepEqual(await getCredentials('reg.example', { HOME: home, DOCKER_CONFIG: alt }), { username: 'x', password: 'y' });
  assert.equal(await getCredentials('reg.example', { HOME: path.join(dir, 'nohome') }), undefined);
  await fsp.writeFile(path.join(alt, 'config.json'), '{ not json');
  await assert.rejects(getCredentials('reg.example', { DOCKER_CONFIG: alt }), /not valid JSON/);
});

test('credential helper: credHelpers beats credsStore beats auths; <token> means identity token; a miss is anonymous', async (t) => {
  const { bin, home, env } = await helperEnv(t);
  await fsp.writeFile(
    path.join(bin, 'store.json'),
    JSON.stringify({
      'reg.example': { Username: 'helper-user', Secret: 'helper-pass' },
      'tok.example': { Username: '<token>', Secret: 'IDTOKEN' },
    }),
  );
  await writeConfig(home, {
    credHelpers: { 'reg.example': 'test', 'tok.example': 'test', 'miss.example': 'test' },
    credsStore: 'missing-helper',
    auths: { 'miss.example': { auth: Buffer.from('file:pw').toString('base64') } },
  });
  assert.deepEqual(await getCredentials('reg.example', env), { username: 'helper-user', password: 'helper-pass' });
  assert.deepEqual(await getCredentials('tok.example', env), { identityToken: 'IDTOKEN' });
  assert.equal(await getCredentials('miss.example', env), undefined, 'a helper miss does not fall back to auths');
  // credsStore applies where no credHelpers entry exists; an absent helper binary is a clear error
  await assert.rejects(getCredentials('elsewhere.example', env), /docker-credential-missing-helper is not installed/);
  const calls = await fsp.readFile(path.join(bin, 'calls.log'), 'utf8');
  assert.deepEqual(calls.trim().split('\n'), ['get reg.example', 'get tok.example', 'get miss.example']);
});

test('login checks GET /v2/ first, then saves base64 auth with mode 0600 in a 0700 dir; logout removes it', async (t) => {
  const reg = await FakeRegistry.start({ bearer: { users: { alice: 'pw' } } });
  t.after(() => reg.close());
  const { home, env } = await helperEnv(t);
  const agent = testAgent(t);
  const opts = { plainHttp: true, dispatcher: agent, env };

  await assert.rejects(login(reg.host, 'alice', 'WRONG', opts), (e: unknown) => e instanceof AuthError && !String((e as Error).message).includes('WRONG'));
  await assert.rejects(fsp.stat(path.join(home, '.docker', 'config.json')), 'nothing saved after a failed check');

  const r = await login(reg.host, 'alice', 'pw', opts);
  assert.equal(r.stored, 'config');
  assert.equal(r.configPath, path.join(home, '.docker', 'config.json'));
  const st = await fsp.stat(r.configPath);
  assert.equal(st.mode & 0o777, 0o600);
  assert.equal((await fsp.stat(path.dirname(r.configPath))).mode & 0o777, 0o700);
  const cfg = JSON.parse(await fsp.readFile(r.configPath, 'utf8'));
  assert.equal(Buffer.from(cfg.auths[reg.host].auth, 'base64').toString(), 'alice:pw');
  assert.ok(reg.requests('GET', '/v2/').length >= 2, 'GET /v2/ through the auth flow');
  assert.ok(reg.requests('GET', '/token').some((x) => x.headers.authorization === 'Basic ' + Buffer.from('alice:pw').toString('base64')));

  // the saved credentials are used
  reg.putManifest('m/x', 'v1', Buffer.from('{}'), 'application/vnd.oci.image.manifest.v1+json');
  assert.deepEqual(await listTags(parseReference(`${reg.host}/m/x`), opts), ['v1']);

  assert.deepEqual(await logout(reg.host, opts), { removed: true });
  assert.deepEqual(await logout(reg.host, opts), { removed: false });
  const after = JSON.parse(await fsp.readFile(r.configPath, 'utf8'));
  assert.equal(after.auths[reg.host], undefined);
});

test('login and logout go through the configured credsStore helper', async (t) => {
  const reg = await FakeRegistry.start({ basic: { bob: 'hunter22' } });
  t.after(() => reg.close());
  const { bin, home, env } = await helperEnv(t);
  await writeConfig(home, { credsStore: 'test', otherSetting: { keep: true } });
  const opts = { plainHttp: true, dispatcher: testAgent(t), env };
  const r = await login(reg.host, 'bob', 'hunter22', opts);
  assert.equal(r.stored, 'helper');
  const db = JSON.parse(await fsp.readFile(path.join(bin, 'store.json'), 'utf8'));
  assert.deepEqual(db[reg.host], { ServerURL: reg.host, Username: 'bob', Secret: 'hunter22' });
  const cfg = JSON.parse(await fsp.readFile(path.join(home, '.docker', 'config.json'), 'utf8'));
  assert.deepEqual(cfg, { credsStore: 'test', otherSetting: { keep: true } }, 'no secret written to config.json');
  // the helper's credentials authenticate later requests
  assert.deepEqual(await listTags(parseReference(`${reg.host}/m/none`), opts), []);
  assert.deepEqual(await logout(reg.host, opts), { removed: true });
  assert.deepEqual(await logout(reg.host, opts), { removed: false });
  const calls = (await fsp.readFile(path.join(bin, 'calls.log'), 'utf8')).trim().split('\n');
  assert.deepEqual(calls, [`store ${reg.host}`, `get ${reg.host}`, `erase ${reg.host}`, `erase ${reg.host}`]);
});
