import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseReference } from '../../../src/oci/reference.js';
import { listTags } from '../../../src/remote/index.js';
import { FakeRegistry } from './fake-registry.js';
import { baseOpts, testAgent, tmpDir } from './helpers.js';

test('listTags follows Link (relative, then absolute), stops when a page adds nothing, sorts', async (t) => {
  const reg = await FakeRegistry.start();
  t.after(() => reg.close());
  const dir = await tmpDir(t);
  const pages: Record<string, { tags: string[] | null; link?: string }> = {
    '': { tags: ['v2', 'a'], link: '</v2/m/t/tags/list?n=2&last=v2>; rel="next"' },
    'n=2&last=v2': { tags: ['c', 'B'], link: `<${'@URL@'}/v2/m/t/tags/list?n=2&last=c>; rel="next"` },
    'n=2&last=c': { tags: ['a', 'c'], link: '</v2/m/t/tags/list?n=2&last=zzz>; rel="next"' },
  };
  reg.hook = ({ url, res }) => {
    if (!url.pathname.endsWith('/tags/list')) return false;
    const p = pages[url.search.slice(1)];
    assert.ok(p, `unexpected page ${url.search}`);
    const headers: Record<string, string> = {};
    if (p.link) headers.link = p.link.replace('@URL@', reg.url);
    reg.json(res, 200, { name: 'm/t', tags: p.tags }, headers);
    return true;
  };
  const tags = await listTags(parseReference(`${reg.host}/m/t`), baseOpts(testAgent(t), dir));
  assert.deepEqual(tags, ['B', 'a', 'c', 'v2']);
  assert.equal(reg.requests('GET', '/tags/list').length, 3);
});

test('listTags on a 2.8-like registry (no Link, directory order, null tags) makes one request', async (t) => {
  const reg = await FakeRegistry.start();
  t.after(() => reg.close());
  const dir = await tmpDir(t);
  let calls = 0;
  reg.hook = ({ url, res }) => {
    if (!url.pathname.endsWith('/tags/list')) return false;
    calls++;
    reg.json(res, 200, { name: 'm/t', tags: calls === 1 ? ['b', 'v1', 'c', 'e', 'm3', 'd'] : null });
    return true;
  };
  assert.deepEqual(await listTags(parseReference(`${reg.host}/m/t`), baseOpts(testAgent(t), dir)), ['b', 'c', 'd', 'e', 'm3', 'v1']);
  assert.deepEqual(await listTags(parseReference(`${reg.host}/m/t`), baseOpts(testAgent(t), dir)), []);
});

test('listTags of a missing repository is NAME_UNKNOWN', async (t) => {
  const reg = await FakeRegistry.start();
  t.after(() => reg.close());
  const dir = await tmpDir(t);
  reg.hook = ({ url, res }) => {
    if (!url.pathname.endsWith('/tags/list')) return false;
    reg.error(res, 404, 'NAME_UNKNOWN', 'repository name not known to registry');
    return true;
  };
  const err = await listTags(parseReference(`${reg.host}/m/none`), baseOpts(testAgent(t), dir)).catch((e) => e);
  assert.deepEqual(err.ociCodes, ['NAME_UNKNOWN']);
  assert.match(err.hint, /does not exist/);
});
