import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseChallenges, challengeScopes, findChallenge } from '../../../src/remote/auth/challenge.js';

const cases: Array<{ name: string; header: string | string[]; want: Array<{ scheme: string; params: Record<string, string>; token68?: string }> }> = [
  { name: 'basic', header: 'Basic realm="test-realm"', want: [{ scheme: 'basic', params: { realm: 'test-realm' } }] },
  {
    name: 'docker hub bearer',
    header: 'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/ubuntu:pull"',
    want: [{ scheme: 'bearer', params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/ubuntu:pull' } }],
  },
  {
    name: 'case-insensitive scheme and names, spaces around =',
    header: 'BEARER Realm = "r", SERVICE=svc',
    want: [{ scheme: 'bearer', params: { realm: 'r', service: 'svc' } }],
  },
  {
    name: 'two challenges in one header',
    header: 'Basic realm="a", Bearer realm="https://t.example/token",service="s"',
    want: [
      { scheme: 'basic', params: { realm: 'a' } },
      { scheme: 'bearer', params: { realm: 'https://t.example/token', service: 's' } },
    ],
  },
  {
    name: 'quoted value with commas and escapes',
    header: 'Bearer realm="https://x/token",error="insufficient_scope",error_description="a, \\"quoted\\" b"',
    want: [{ scheme: 'bearer', params: { realm: 'https://x/token', error: 'insufficient_scope', error_description: 'a, "quoted" b' } }],
  },
  {
    name: 'several scopes in one param (2.8 mount challenge)',
    header: 'Bearer realm="r",service="s",scope="repository:org/repo2:pull,push repository:org/repo:pull"',
    want: [{ scheme: 'bearer', params: { realm: 'r', service: 's', scope: 'repository:org/repo2:pull,push repository:org/repo:pull' } }],
  },
  {
    name: 'challenges across headers',
    header: ['Basic realm="x"', 'Bearer realm="y"'],
    want: [
      { scheme: 'basic', params: { realm: 'x' } },
      { scheme: 'bearer', params: { realm: 'y' } },
    ],
  },
  { name: 'bare scheme then another', header: 'Negotiate, Basic realm="z"', want: [{ scheme: 'negotiate', params: {} }, { scheme: 'basic', params: { realm: 'z' } }] },
  { name: 'token68', header: 'Negotiate YWJjZA==, Basic realm="z"', want: [{ scheme: 'negotiate', params: {}, token68: 'YWJjZA==' }, { scheme: 'basic', params: { realm: 'z' } }] },
  { name: 'unquoted realm URL', header: 'Bearer realm=https://auth.example.com/token,service=reg', want: [{ scheme: 'bearer', params: { realm: 'https://auth.example.com/token', service: 'reg' } }] },
  { name: 'empty quoted value', header: 'Bearer realm="",service="s"', want: [{ scheme: 'bearer', params: { realm: '', service: 's' } }] },
  { name: 'empty header', header: '', want: [] },
];

for (const c of cases) {
  test(`parseChallenges: ${c.name}`, () => {
    const got = parseChallenges(c.header).map((x) => (x.token68 ? x : { scheme: x.scheme, params: x.params }));
    assert.deepEqual(got, c.want);
  });
}

test('challengeScopes splits on whitespace', () => {
  const [c] = parseChallenges('Bearer realm="r",scope="repository:a:pull  repository:b:push,pull"');
  assert.deepEqual(challengeScopes(c), ['repository:a:pull', 'repository:b:push,pull']);
  assert.deepEqual(challengeScopes(undefined), []);
  assert.equal(findChallenge(parseChallenges('Basic realm="x"'), 'Bearer'), undefined);
});
