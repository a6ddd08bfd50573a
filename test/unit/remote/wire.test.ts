import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatChunkRange, parseContentRange, parseUploadRange, uploadOffsetFromRange } from '../../../src/remote/range.js';
import { appendDigestQuery, parseLinkNext, resolveLocation } from '../../../src/remote/url.js';
import { parseOciErrors, shortDigest } from '../../../src/remote/errors.js';

const D = 'sha256:' + 'ab'.repeat(32);

test('parseUploadRange is lenient about prefixes', () => {
  assert.deepEqual(parseUploadRange('0-1023'), { start: 0, end: 1023 });
  assert.deepEqual(parseUploadRange('bytes=0-9'), { start: 0, end: 9 });
  assert.deepEqual(parseUploadRange('bytes 0-9'), { start: 0, end: 9 });
  assert.deepEqual(parseUploadRange(' 0 - 9 '), { start: 0, end: 9 });
  assert.equal(parseUploadRange('9-0'), undefined);
  assert.equal(parseUploadRange('abc'), undefined);
  assert.equal(parseUploadRange(undefined), undefined);
});

test('uploadOffsetFromRange: 0-0 is ambiguous', () => {
  assert.equal(uploadOffsetFromRange('0-99'), 100);
  assert.equal(uploadOffsetFromRange('0-0'), 0);
  assert.equal(uploadOffsetFromRange('0-0', 1), 1);
  assert.equal(uploadOffsetFromRange(undefined), undefined);
});

test('parseContentRange', () => {
  assert.deepEqual(parseContentRange('bytes 10-19/3000'), { start: 10, end: 19, total: 3000 });
  assert.deepEqual(parseContentRange('bytes 10-19/*'), { start: 10, end: 19, total: undefined });
  assert.equal(parseContentRange('bytes */3000'), undefined);
  assert.equal(parseContentRange('bytes 10-3000/3000'), undefined);
  assert.equal(parseContentRange('10-19/30'), undefined);
});

test('formatChunkRange is inclusive without a prefix', () => {
  assert.equal(formatChunkRange(0, 10), '0-9');
  assert.equal(formatChunkRange(10, 1), '10-10');
});

const appendCases: Array<[string, string]> = [
  ['https://r/v2/a/blobs/uploads/u', `https://r/v2/a/blobs/uploads/u?digest=sha256%3A${'ab'.repeat(32)}`],
  ['https://r/v2/a/blobs/uploads/u?_state=a%2Bb%3D&x=1', `https://r/v2/a/blobs/uploads/u?_state=a%2Bb%3D&x=1&digest=sha256%3A${'ab'.repeat(32)}`],
  ['https://r/u?', `https://r/u?digest=sha256%3A${'ab'.repeat(32)}`],
  ['https://r/u?a=1&', `https://r/u?a=1&digest=sha256%3A${'ab'.repeat(32)}`],
  // a pre-signed query with characters URLSearchParams would rewrite (+, unencoded /) stays byte-identical
  ['https://s3/b?X-Amz-Signature=a+b/c==&X-Amz-Date=1', `https://s3/b?X-Amz-Signature=a+b/c==&X-Amz-Date=1&digest=sha256%3A${'ab'.repeat(32)}`],
];
for (const [loc, want] of appendCases) {
  test(`appendDigestQuery ${loc}`, () => assert.equal(appendDigestQuery(loc, D), want));
}

test('resolveLocation handles relative and absolute Locations', () => {
  assert.equal(resolveLocation('/v2/a/blobs/uploads/u?_state=x', 'http://127.0.0.1:5000/v2/a/blobs/uploads/'), 'http://127.0.0.1:5000/v2/a/blobs/uploads/u?_state=x');
  assert.equal(resolveLocation('https://other/upload?sig=1', 'http://r/v2/'), 'https://other/upload?sig=1');
  assert.equal(resolveLocation('u2', 'http://r/v2/a/blobs/uploads/u1'), 'http://r/v2/a/blobs/uploads/u2');
});

test('parseLinkNext', () => {
  assert.equal(parseLinkNext('</v2/a/tags/list?n=2&last=b>; rel="next"'), '/v2/a/tags/list?n=2&last=b');
  assert.equal(parseLinkNext('<https://x/p1>; rel="prev", <https://x/p3>; rel="next"'), 'https://x/p3');
  assert.equal(parseLinkNext(['<https://x/p1>; rel=prev', '<https://x/p3>; rel=next']), 'https://x/p3');
  assert.equal(parseLinkNext('<https://x/p1>; rel="prev"'), undefined);
  assert.equal(parseLinkNext(undefined), undefined);
});

test('parseOciErrors tolerates any body', () => {
  assert.deepEqual(parseOciErrors('{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known","detail":{"name":"x"}}]}'), [
    { code: 'NAME_UNKNOWN', message: 'repository name not known', detail: { name: 'x' } },
  ]);
  assert.deepEqual(parseOciErrors('404 page not found'), []);
  assert.deepEqual(parseOciErrors('<html>bad gateway</html>'), []);
  assert.deepEqual(parseOciErrors('{"errors":[{"code":"denied"}]}'), [{ code: 'DENIED', message: undefined, detail: undefined }]);
  assert.equal(shortDigest(D), 'sha256:abababababab…');
});
