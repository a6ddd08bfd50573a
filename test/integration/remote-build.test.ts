// build --output-remote, upload and attach against a real docker-registry (distribution 2.8.2) on 127.0.0.1.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { runCli } from '../support/run-cli.js';
import { tmpDir, writeTree, type Tree } from '../support/tmp.js';
import { startRegistry, type RegistryHandle } from '../support/registry.js';

const ROOT = path.resolve(import.meta.dirname, '../../..');
const SCHEMA = JSON.parse(readFileSync(path.join(ROOT, 'spec/modelpack-config-schema.json'), 'utf8'));
const addFormats = ((addFormatsModule as any).default ?? addFormatsModule) as (a: any) => void;
const ajv = new Ajv2020({ allErrors: true, strict: true });
addFormats(ajv);
const validateSchema = ajv.compile<any>(SCHEMA);

const SDE = '1700000000';
const FILES: Tree = {
  'config.json': '{"model_type":"llama"}',
  'model-00001-of-00002.safetensors': Buffer.alloc(300_000, 3),
  // above the 4 MiB in-memory threshold: streamed PATCH with the digest computed on the way
  'model-00002-of-00002.safetensors': Buffer.alloc(5 * 1024 * 1024 + 17, 4),
  'scripts/run.sh': { content: '#!/bin/sh\necho hi\n', mode: 0o755 },
  'scripts/lib/util.py': 'print("util")\n',
  'README.md': '# demo\n',
};
// `scripts` is a directory: one deterministic tar layer of its tree.
const MODELFILE = 'NAME demo\nPARAMSIZE 7b\nCONFIG config.json\nMODEL *.safetensors\nCODE scripts\nDOC README.md\n';

const registries: RegistryHandle[] = [];
after(async () => {
  await Promise.all(registries.map((r) => r.stop()));
});
let shared: RegistryHandle | undefined;
async function registry(): Promise<RegistryHandle> {
  if (!shared) {
    shared = await startRegistry();
    registries.push(shared);
  }
  return shared;
}

function modelDir(files: Tree = FILES, modelfile = MODELFILE): string {
  const dir = tmpDir('modctl-ctx-');
  writeTree(dir, { ...files, Modelfile: modelfile });
  return dir;
}

async function cli(args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}) {
  return runCli(args, { env: { MODCTL_RETRY_BASE_MS: '5', SOURCE_DATE_EPOCH: SDE, ...opts.env }, cwd: opts.cwd });
}

async function ok(args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<any> {
  const r = await cli(['--json', ...args], opts);
  assert.equal(r.code, 0, `modctl ${args.join(' ')} failed: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

function sha256(b: Buffer | string): string {
  return 'sha256:' + createHash('sha256').update(b).digest('hex');
}

function content(v: Tree[string]): Buffer {
  return typeof v === 'string' || Buffer.isBuffer(v) ? Buffer.from(v) : Buffer.from(v.content);
}

function assertTree(out: string, files: Tree) {
  for (const [rel, v] of Object.entries(files)) {
    assert.deepEqual(readFileSync(path.join(out, rel)), content(v), rel);
    if (typeof v === 'object' && !Buffer.isBuffer(v)) assert.equal(statSync(path.join(out, rel)).mode & 0o777, v.mode, `${rel} mode`);
  }
}

/** Pull into a fresh store, check the config against the schema, extract; returns manifest, config and output dir. */
async function pullAndExtract(reg: RegistryHandle, ref: string): Promise<{ digest: string; manifest: any; config: any; out: string }> {
  const store = tmpDir('modctl-pull-');
  const pulled = await ok(['--storage-dir', store, 'pull', '--plain-http', ref]);
  const manifest = JSON.parse(readFileSync(path.join(store, 'blobs/sha256', pulled.digest.slice(7)), 'utf8'));
  const config = JSON.parse(readFileSync(path.join(store, 'blobs/sha256', manifest.config.digest.slice(7)), 'utf8'));
  assert.ok(validateSchema(config), JSON.stringify(validateSchema.errors));
  assert.equal(config.modelfs.diffIds.length, manifest.layers.length);
  const out = path.join(tmpDir('modctl-out-'), 'out');
  await ok(['--storage-dir', store, 'extract', ref, '--output', out]);
  return { digest: pulled.digest, manifest, config, out };
}

function layerPaths(manifest: any): string[] {
  return manifest.layers.map((l: any) => l.annotations['org.cncf.model.filepath']);
}

/** Big files go up through undici, or (every streamed file, however small) through the fetch workers' send path. */
const SEND_PATHS: Array<[string, NodeJS.ProcessEnv]> = [
  ['undici', { MODCTL_FAST_FETCH: '0' }],
  ['fetch workers', { MODCTL_FAST_FETCH_MIN: '1' }],
];

for (const [via, env] of SEND_PATHS)
for (const raw of [true, false]) {
  test(`build --output-remote (--raw=${raw}) equals a local build + push; pull + extract gives the tree; a rebuild uploads nothing (${via})`, async () => {
    const reg = await registry();
    const ctx = modelDir();
    const mf = path.join(ctx, 'Modelfile');
    const tag = `${raw}-${via.replace(/ /g, '-')}`;
    const refLocal = `${reg.host}/models/local-${tag}:v1`;
    const refRemote = `${reg.host}/models/remote-${tag}:v1`;

    const s1 = tmpDir('modctl-store-');
    const local = await ok(['--storage-dir', s1, 'build', `--raw=${raw}`, '-t', refLocal, '-f', mf, ctx]);
    await ok(['--storage-dir', s1, 'push', '--plain-http', refLocal]);

    const s2 = tmpDir('modctl-store-');
    const remote = await ok(['--storage-dir', s2, 'build', '--output-remote', '--plain-http', `--raw=${raw}`, '-t', refRemote, '-f', mf, ctx], { env });
    assert.equal(remote.pushed, true);
    assert.equal(remote.digest, local.digest, 'same manifest digest as the local build');
    assert.deepEqual(remote.config, local.config);
    assert.deepEqual(
      remote.layers.map((l: any) => [l.path, l.digest, l.mediaType]),
      local.layers.map((l: any) => [l.path, l.digest, l.mediaType]),
    );
    assert.equal(remote.hashed, 5);
    assert.equal(remote.cacheHits, 0);
    assert.equal(remote.blobsUploaded + remote.blobsSkipped, 6);
    // nothing but the digest cache in the store directory
    assert.deepEqual(readdirSync(s2), ['cache']);

    const pulled = await pullAndExtract(reg, refRemote);
    assert.equal(pulled.digest, local.digest);
    assertTree(pulled.out, FILES);

    // unchanged tree: every layer is a digest-cache hit confirmed by HEAD; nothing read, nothing sent
    const again = await ok(['--storage-dir', s2, 'build', '--output-remote', '--plain-http', `--raw=${raw}`, '-t', refRemote, '-f', mf, ctx], { env });
    assert.equal(again.digest, local.digest);
    assert.equal(again.blobsUploaded, 0);
    assert.equal(again.bytesUploaded, 0);
    assert.equal(again.hashed, 0);
    assert.equal(again.cacheHits, 5);
    assert.ok(again.layers.every((l: any) => l.reused));
  });
}

test('build --output-remote re-points an existing tag and uploads only what changed', async () => {
  const reg = await registry();
  const ref = `${reg.host}/models/retag:v1`;
  const store = tmpDir('modctl-store-');
  const ctx = modelDir();
  const first = await ok(['--storage-dir', store, 'build', '--output-remote', '--plain-http', '-t', ref, '-f', path.join(ctx, 'Modelfile'), ctx]);
  writeFileSync(path.join(ctx, 'README.md'), '# changed\n');
  const second = await ok(['--storage-dir', store, 'build', '--output-remote', '--plain-http', '-t', ref, '-f', path.join(ctx, 'Modelfile'), ctx]);
  assert.notEqual(second.digest, first.digest);
  assert.equal(second.hashed, 1);
  assert.equal(second.blobsUploaded, 2); // README.md and the config
  const inspected = await ok(['--storage-dir', store, 'inspect', '--remote', '--plain-http', ref]);
  assert.equal(inspected.Digest, second.digest);
});

test('upload pushes one layer blob and records it, so build --output-remote skips that file', async () => {
  const reg = await registry();
  const repo = `${reg.host}/models/uploaded`;
  const ctx = modelDir();
  const store = tmpDir('modctl-store-');
  const big = 'model-00002-of-00002.safetensors';
  const up = await ok(['--storage-dir', store, 'upload', big, '--repo', repo, '--plain-http'], { cwd: ctx });
  assert.equal(up.uploaded, true);
  assert.equal(up.hashed, true);
  assert.equal(up.digest, sha256(content(FILES[big])));
  assert.equal(up.mediaType, 'application/vnd.cncf.model.weight.v1.raw');
  assert.equal(up.descriptor.annotations['org.cncf.model.filepath'], big);
  assert.deepEqual(readdirSync(store), ['cache']);

  // again: cache hit confirmed by HEAD
  const again = await ok(['--storage-dir', store, 'upload', big, '--repo', repo, '--plain-http'], { cwd: ctx });
  assert.equal(again.uploaded, false);
  assert.equal(again.hashed, false);

  // --destination-dir and classification of a small config file
  const cfg = await ok(['--storage-dir', store, 'upload', 'config.json', '--repo', repo, '--plain-http', '--destination-dir', 'conf'], { cwd: ctx });
  assert.equal(cfg.path, 'conf/config.json');
  assert.equal(cfg.mediaType, 'application/vnd.cncf.model.weight.config.v1.raw');

  const built = await ok(['--storage-dir', store, 'build', '--output-remote', '--plain-http', '-t', `${repo}:v1`, '-f', path.join(ctx, 'Modelfile'), ctx]);
  const layer = built.layers.find((l: any) => l.path === big);
  assert.equal(layer.digest, up.digest);
  assert.equal(layer.reused, true);
  // config.json too: a raw blob is the file's bytes whatever its path, so the `conf/` upload counts
  assert.equal(built.cacheHits, 2);
  assert.equal(built.hashed, 3);

  const r = await cli(['--storage-dir', store, 'upload', 'missing.bin', '--repo', repo, '--plain-http'], { cwd: ctx });
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /^error: file missing\.bin does not exist\n$/);
  const t = await cli(['--storage-dir', store, 'upload', big, '--repo', `${repo}:v1`, '--plain-http'], { cwd: ctx });
  assert.equal(t.code, 2);
  assert.match(t.stderr, /must name a repository without a tag/);
});

const BASE_FILES: Tree = {
  'config.json': '{"model_type":"llama"}',
  'model.safetensors': Buffer.alloc(200_000, 7),
  'run.py': 'print(1)\n',
};
const BASE_MODELFILE = 'NAME demo\nPARAMSIZE 7b\nCONFIG config.json\nMODEL model.safetensors\nCODE run.py\n';

test('attach (local store): adds a file in build order, refuses a duplicate path, replaces it with --force', async () => {
  const ctx = modelDir({ ...BASE_FILES, 'README.md': '# readme\n', 'tokenizer.json': '{"v":1}' }, BASE_MODELFILE);
  const store = tmpDir('modctl-store-');
  const src = 'example.com/models/demo:v1';
  const base = await ok(['--storage-dir', store, 'build', '--no-modelfile-annotation', '-t', src, '-f', path.join(ctx, 'Modelfile'), ctx]);

  const a = await ok(['--storage-dir', store, 'attach', 'README.md', '-s', src, '-t', 'example.com/models/demo:v2'], { cwd: ctx });
  assert.equal(a.replaced, false);
  assert.equal(a.layer.mediaType, 'application/vnd.cncf.model.doc.v1.raw');
  assert.equal(a.layers, 4);
  const b = await ok(['--storage-dir', store, 'attach', 'tokenizer.json', '-s', 'example.com/models/demo:v2', '-t', 'example.com/models/demo:v3'], { cwd: ctx });
  assert.equal(b.layer.mediaType, 'application/vnd.cncf.model.weight.config.v1.raw');

  // the same as building the whole tree at once (same SOURCE_DATE_EPOCH, no Modelfile annotation)
  const fullMf = writeModelfile(ctx, BASE_MODELFILE + 'CONFIG tokenizer.json\nDOC README.md\n');
  const full = await ok(['--storage-dir', tmpDir('modctl-store-'), 'build', '--no-modelfile-annotation', '-t', 'example.com/models/full:v1', '-f', fullMf, ctx]);
  assert.deepEqual(
    full.layers.map((l: any) => l.path),
    ['config.json', 'tokenizer.json', 'model.safetensors', 'run.py', 'README.md'],
  );
  assert.equal(b.config.digest, full.config.digest, 'same config (diffIds in build order, createdAt from SOURCE_DATE_EPOCH)');
  assert.equal(b.digest, full.digest, 'same manifest');
  assert.notEqual(base.digest, b.digest);

  // duplicate path
  let r = await cli(['--storage-dir', store, 'attach', 'README.md', '-s', 'example.com/models/demo:v3', '-t', 'example.com/models/demo:v4'], { cwd: ctx });
  assert.equal(r.code, 1);
  assert.equal(r.stderr, 'error: file README.md already exists in example.com/models/demo:v3; use --force to replace it\n');

  // --force replaces it in place
  writeFileSync(path.join(ctx, 'README.md'), '# new readme\n');
  const c = await ok(['--storage-dir', store, 'attach', 'README.md', '-f', '-s', 'example.com/models/demo:v3', '-t', 'example.com/models/demo:v4'], { cwd: ctx });
  assert.equal(c.replaced, true);
  assert.equal(c.layers, 5);
  assert.equal(c.layer.digest, sha256('# new readme\n'));
  const manifest = JSON.parse(readFileSync(path.join(store, 'blobs/sha256', c.digest.slice(7)), 'utf8'));
  const config = JSON.parse(readFileSync(path.join(store, 'blobs/sha256', manifest.config.digest.slice(7)), 'utf8'));
  assert.ok(validateSchema(config), JSON.stringify(validateSchema.errors));
  assert.deepEqual(config.modelfs.diffIds, manifest.layers.map((l: any) => l.digest));
  assert.equal(config.descriptor.name, 'demo');
  assert.equal(config.config.paramSize, '7b');
  const out = path.join(tmpDir('modctl-out-'), 'out');
  await ok(['--storage-dir', store, 'extract', 'example.com/models/demo:v4', '--output', out]);
  assertTree(out, { ...BASE_FILES, 'README.md': '# new readme\n', 'tokenizer.json': '{"v":1}' });

  // -d places the file under a directory; a tar layer with --raw=false; createdAt kept without SOURCE_DATE_EPOCH
  const d = await ok(['--storage-dir', store, 'attach', 'run.py', '-d', 'extra/code', '--raw=false', '-s', 'example.com/models/demo:v4', '-t', 'example.com/models/demo:v5'], {
    cwd: ctx,
    env: { SOURCE_DATE_EPOCH: '' },
  });
  assert.equal(d.layer.path, 'extra/code/run.py');
  assert.equal(d.layer.mediaType, 'application/vnd.cncf.model.code.v1.tar');
  const m5 = JSON.parse(readFileSync(path.join(store, 'blobs/sha256', d.digest.slice(7)), 'utf8'));
  const c5 = JSON.parse(readFileSync(path.join(store, 'blobs/sha256', m5.config.digest.slice(7)), 'utf8'));
  assert.equal(c5.descriptor.createdAt, config.descriptor.createdAt);
  assert.deepEqual(layerPaths(m5), ['config.json', 'tokenizer.json', 'model.safetensors', 'extra/code/run.py', 'run.py', 'README.md']);
  const out5 = path.join(tmpDir('modctl-out-'), 'out');
  await ok(['--storage-dir', store, 'extract', 'example.com/models/demo:v5', '--output', out5]);
  assert.equal(readFileSync(path.join(out5, 'extra/code/run.py'), 'utf8'), 'print(1)\n');

  // clear one-line errors
  r = await cli(['--storage-dir', store, 'attach', 'nope.txt', '-s', src, '-t', 'example.com/models/demo:v9'], { cwd: ctx });
  assert.equal(r.code, 2);
  assert.equal(r.stderr, 'error: file nope.txt does not exist\n');
  r = await cli(['--storage-dir', store, 'attach', 'README.md', '-s', 'example.com/models/absent:v1', '-t', 'example.com/models/demo:v9'], { cwd: ctx });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^error: example\.com\/models\/absent:v1 is not in the local store\n/);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
  r = await cli(['--storage-dir', store, 'attach', path.join(ctx, '..', 'x'), '-s', src, '-t', 'example.com/models/demo:v9'], { cwd: ctx });
  assert.notEqual(r.code, 0);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
});

function writeModelfile(ctx: string, text: string): string {
  const p = path.join(ctx, 'Modelfile.full');
  writeFileSync(p, text);
  return p;
}

test('attach --output-remote: same repository uploads only the new blob; another repository mounts the rest', async () => {
  const reg = await registry();
  const ctx = modelDir({ ...BASE_FILES, 'docs/guide.md': '# guide\n' }, BASE_MODELFILE);
  const store = tmpDir('modctl-store-');
  const src = `${reg.host}/models/attach:v1`;
  await ok(['--storage-dir', store, 'build', '--output-remote', '--plain-http', '-t', src, '-f', path.join(ctx, 'Modelfile'), ctx]);

  const a = await ok(['--storage-dir', store, 'attach', 'docs/guide.md', '--output-remote', '--plain-http', '-s', src, '-t', `${reg.host}/models/attach:v2`], { cwd: ctx });
  assert.equal(a.pushed, true);
  assert.equal(a.layer.path, 'docs/guide.md');
  assert.equal(a.blobsUploaded, 2); // the new layer and the config
  assert.equal(a.blobsMounted, 0);
  assert.deepEqual(readdirSync(store), ['cache']);
  let p = await pullAndExtract(reg, `${reg.host}/models/attach:v2`);
  assert.equal(p.digest, a.digest);
  assert.deepEqual(layerPaths(p.manifest), ['config.json', 'model.safetensors', 'run.py', 'docs/guide.md']);
  assertTree(p.out, { ...BASE_FILES, 'docs/guide.md': '# guide\n' });

  // duplicate refused, --force replaces
  let r = await cli(['--storage-dir', store, 'attach', 'docs/guide.md', '--output-remote', '--plain-http', '-s', `${reg.host}/models/attach:v2`, '-t', `${reg.host}/models/attach:v3`], { cwd: ctx });
  assert.equal(r.code, 1);
  assert.equal(r.stderr, `error: file docs/guide.md already exists in ${reg.host}/models/attach:v2; use --force to replace it\n`);
  writeFileSync(path.join(ctx, 'docs/guide.md'), '# guide v2\n');
  const b = await ok(['--storage-dir', store, 'attach', 'docs/guide.md', '--force', '--output-remote', '--plain-http', '-s', `${reg.host}/models/attach:v2`, '-t', `${reg.host}/models/other:v1`], { cwd: ctx });
  assert.equal(b.replaced, true);
  assert.equal(b.blobsMounted, 3, 'the kept layers are mounted from the source repository');
  p = await pullAndExtract(reg, `${reg.host}/models/other:v1`);
  assert.equal(p.digest, b.digest);
  assertTree(p.out, { ...BASE_FILES, 'docs/guide.md': '# guide v2\n' });

  // another registry: the kept blobs are streamed across from the source
  const reg2 = await startRegistry();
  registries.push(reg2);
  const c = await ok(['--storage-dir', store, 'attach', 'docs/guide.md', '-d', 'more', '--output-remote', '--plain-http', '-s', `${reg.host}/models/other:v1`, '-t', `${reg2.host}/models/copy:v1`], { cwd: ctx });
  assert.equal(c.blobsUploaded, 5); // 3 kept layers, the new one (same bytes as docs/guide.md), the config
  assert.equal(c.blobsMounted, 0);
  p = await pullAndExtract(reg2, `${reg2.host}/models/copy:v1`);
  assert.deepEqual(layerPaths(p.manifest), ['config.json', 'model.safetensors', 'run.py', 'docs/guide.md', 'more/guide.md']);
  assertTree(p.out, { ...BASE_FILES, 'docs/guide.md': '# guide v2\n', 'more/guide.md': '# guide v2\n' });

  // a source that does not exist: one clear line
  r = await cli(['--storage-dir', store, 'attach', 'run.py', '--output-remote', '--plain-http', '-s', `${reg.host}/models/absent:v1`, '-t', `${reg.host}/models/absent:v2`], { cwd: ctx });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^error: .*absent.*\n/);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
});

test('build --output-remote to an unreachable registry fails with a clear message', async () => {
  const ctx = modelDir(BASE_FILES, BASE_MODELFILE);
  const store = tmpDir('modctl-store-');
  const r = await cli(['--storage-dir', store, 'build', '--output-remote', '--plain-http', '-t', '127.0.0.1:1/models/x:v1', '-f', path.join(ctx, 'Modelfile'), ctx], {
    env: { MODCTL_RETRY_ATTEMPTS: '1' },
  });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^error: 127\.0\.0\.1:1: .*/m);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
  assert.ok(!existsSync(path.join(store, 'blobs')));
});
