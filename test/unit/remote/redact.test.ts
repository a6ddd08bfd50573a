import { test } from 'node:test';
import assert from 'node:assert/strict';
import { redactHeaders, redactText, redactUrl } from '../../../src/remote/redact.js';

const cases: Array<[string, string]> = [
  ['https://reg.example/v2/a/blobs/uploads/u1?_state=SECRETHMAC&digest=sha256%3Aabc', 'https://reg.example/v2/a/blobs/uploads/u1?_state=REDACTED&digest=sha256%3Aabc'],
  ['https://user:pass@reg.example/v2/', 'https://reg.example/v2/'],
  ['https://auth.example/token?service=reg&scope=repository%3Aa%3Apull&account=bob', 'https://auth.example/token?service=reg&scope=repository%3Aa%3Apull&account=REDACTED'],
  [
    'https://s3.example/bucket/blob?X-Amz-Signature=deadbeef&X-Amz-Credential=AKIA&X-Amz-Expires=300',
    'https://s3.example/bucket/blob?X-Amz-Signature=REDACTED&X-Amz-Credential=REDACTED&X-Amz-Expires=REDACTED',
  ],
  ['https://r/v2/a/blobs/uploads/?mount=sha256:1&from=b', 'https://r/v2/a/blobs/uploads/?mount=sha256:1&from=b'],
  ['https://r/v2/a/tags/list?n=10&last=v1', 'https://r/v2/a/tags/list?n=10&last=v1'],
  ['https://r/v2/a?flag', 'https://r/v2/a?flag'],
  ['https://r/x?token=abc#frag', 'https://r/x?token=REDACTED'],
  ['not a url', 'not a url'],
];
for (const [input, want] of cases) {
  test(`redactUrl ${input}`, () => assert.equal(redactUrl(input), want));
}

test('redactHeaders keeps the scheme, hides credentials', () => {
  assert.deepEqual(redactHeaders({ Authorization: 'Bearer abc.def', cookie: 'a=b', accept: 'x' }), {
    Authorization: 'Bearer REDACTED',
    cookie: 'REDACTED',
    accept: 'x',
  });
});

test('redactText blanks URLs, bearer tokens and known secrets', () => {
  const s = redactText('GET https://cdn/x?sig=123 failed with Bearer abcdefghijkl and password hunter22', ['hunter22']);
  assert.equal(s, 'GET https://cdn/x?sig=REDACTED failed with Bearer REDACTED and password REDACTED');
});
