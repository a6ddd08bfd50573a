import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { readFileSync, readdirSync, statSync, symlinkSync, writeFileSync, existsSync } from 'node:fs';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { runCli } from '../support/run-cli.js';
import { tmpDir, writeTree } from '../support/tmp.js';

const execFileP = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, '../../..');
const BIN = path.join(ROOT, 'bin/modctl');
const SCHEMA = JSON.parse(readFileSync(path.join(ROOT, 'spec/modelpack-config-schema.json'), 'utf8'));
const addFormats = ((addFormatsModule as any).default ?? addFormatsModule) as (a: any) => void;

function schemaValidator() {
  const ajv = new Ajv2020({ allErrors: true, strict: true });
  addFormats(ajv);
  return ajv.compile<any>(SCHEMA);
}

function sha256File(p: string): string {
  return 'sha256:' + createHash('sha256').update(readFileSync(p)).digest('hex');
}

function blob(store: string, digest: string): Buffer {
  return readFileSync(path.join(store, 'blobs', 'sha256', digest.slice(7)));
}

interface Built {
  store: string;
  digest: string;
  manifest: any;
  config: any;
}

async function buildIn(ctx: string, ref: string, extra: string[] = [], env: NodeJS.ProcessEnv = {}, store = tmpDir('modctl-store-')): Promise<Built> {
  const r = await runCli(['--json', '--storage-dir', store, 'build', '-t', ref, '-f', path.join(ctx, 'Modelfile'), ...extra, ctx], { env });
  assert.equal(r.code, 0, `build failed: ${r.stderr}`);
  const res = JSON.parse(r.stdout);
  const manifest = JSON.parse(blob(store, res.digest).toString());
  const config = JSON.parse(blob(store, manifest.config.digest).toString());
  return { store, digest: res.digest, manifest, config };
}

function makeModel(files: Record<string, string | Buffer | { content: string; mode: number }>, modelfile: string): string {
  const dir = tmpDir('modctl-ctx-');
  writeTree(dir, { ...files, Modelfile: modelfile });
  return dir;
}

const BASIC_MODELFILE = `NAME demo
ARCH transformer
FAMILY llama
FORMAT safetensors
PARAMSIZE 7b
PRECISION bfloat16
CONFIG config.json
MODEL *.safetensors
CODE scripts/run.sh
DOC README.md
DATASET data
`;

function basicModel(): string {
  return makeModel(
    {
      'config.json': '{"model_type":"llama"}',
      'a.safetensors': Buffer.alloc(70_000, 1),
      'b.safetensors': Buffer.alloc(3, 2),
      'scripts/run.sh': { content: '#!/bin/sh\necho hi\n', mode: 0o755 },
      'README.md': '# demo\n',
      'data/train/part-0.jsonl': '{"x":1}\n',
      'data/test.jsonl': '{"x":2}\n',
    },
    BASIC_MODELFILE,
  );
}

test('build writes a ModelPack manifest with the right media types, annotations and diffIds', async () => {
  const ctx = basicModel();
  const b = await buildIn(ctx, 'registry.example.com/models/demo:v1', [], { SOURCE_DATE_EPOCH: '1700000000' });
  const m = b.manifest;
  assert.equal(m.schemaVersion, 2);
  assert.equal(m.mediaType, 'application/vnd.oci.image.manifest.v1+json');
  assert.equal(m.artifactType, 'application/vnd.cncf.model.manifest.v1+json');
  assert.equal(m.config.mediaType, 'application/vnd.cncf.model.config.v1+json');
  const paths = m.layers.map((l: any) => l.annotations['org.cncf.model.filepath']);
  // processor order CONFIG, MODEL, CODE, DOC, DATASET; sorted within a kind
  assert.deepEqual(paths, ['config.json', 'a.safetensors', 'b.safetensors', 'scripts/run.sh', 'README.md', 'data']);
  assert.deepEqual(
    m.layers.map((l: any) => l.mediaType),
    [
      'application/vnd.cncf.model.weight.config.v1.raw',
      'application/vnd.cncf.model.weight.v1.raw',
      'application/vnd.cncf.model.weight.v1.raw',
      'application/vnd.cncf.model.code.v1.raw',
      'application/vnd.cncf.model.doc.v1.raw',
      'application/vnd.cncf.model.dataset.v1.tar',
    ],
  );
  for (const l of m.layers) {
    assert.equal(l.annotations['org.opencontainers.image.title'], l.annotations['org.cncf.model.filepath']);
    const meta = JSON.parse(l.annotations['org.cncf.model.file.metadata+json']);
    assert.equal(meta.name, path.posix.basename(l.annotations['org.cncf.model.filepath']));
    assert.equal(typeof meta.typeflag, 'number');
    // the blob in the store hashes to the layer digest
    assert.equal('sha256:' + createHash('sha256').update(blob(b.store, l.digest)).digest('hex'), l.digest);
  }
  assert.equal(JSON.parse(m.layers[3].annotations['org.cncf.model.file.metadata+json']).mode, 0o755);
  assert.equal(JSON.parse(m.layers[5].annotations['org.cncf.model.file.metadata+json']).typeflag, 5);
  // raw layers are the files themselves
  assert.equal(m.layers[1].digest, sha256File(path.join(ctx, 'a.safetensors')));
  assert.deepEqual(b.config.modelfs, { type: 'layers', diffIds: m.layers.map((l: any) => l.digest) });
  assert.equal(b.config.descriptor.name, 'demo');
  assert.equal(b.config.descriptor.createdAt, '2023-11-14T22:13:20Z');
  assert.deepEqual(b.config.config, { architecture: 'transformer', format: 'safetensors', paramSize: '7b', precision: 'bfloat16' });
  assert.ok(m.annotations['org.cncf.modctl.modelfile'].includes('NAME demo'));
  assert.ok(!m.annotations['org.cncf.modctl.modelfile'].includes('Generated at'));
});

test('every built config passes the official ModelPack JSON schema (draft 2020-12)', async () => {
  const validate = schemaValidator();
  const ctx = basicModel();
  const variants: Array<[string[], NodeJS.ProcessEnv]> = [
    [[], {}],
    [['--raw=false'], {}],
    [['--no-creation-time', '--reasoning'], {}],
    [['--source-url', 'https://example.com/m.git', '--source-revision', 'abc123'], { SOURCE_DATE_EPOCH: '0' }],
  ];
  for (const [flags, env] of variants) {
    const b = await buildIn(ctx, 'example.com/m:v1', flags, env);
    assert.ok(validate(b.config), `config from ${flags.join(' ')} fails the schema: ${JSON.stringify(validate.errors)}`);
  }
  const ext = makeModel(
    { 'w.gguf': 'GGUF' },
    `NAME ext\nAUTHOR "Jane Doe"\nAUTHOR "ACME Labs"\nVERSION 1.0\nREVISION r1\nVENDOR ACME\nTITLE "Ext model"\nDESCRIPTION "An example model"\nLICENSE Apache-2.0\nDOCURL https://example.com/doc\nSOURCEURL https://example.com/src\nDATASETURL https://example.com/data\nINPUTTYPE text\nOUTPUTTYPE text\nKNOWLEDGECUTOFF 2024-06-01\nREASONING true\nTOOLUSAGE yes\nREWARD false\nLANGUAGE en\nLANGUAGE fr\nMODEL w.gguf\n`,
  );
  const b: Built = await buildIn(ext, 'example.com/ext:v1');
  assert.ok(validate(b.config), JSON.stringify(validate.errors));
  assert.deepEqual(b.config.descriptor.authors, ['Jane Doe', 'ACME Labs']);
  assert.equal(b.config.descriptor.description, 'An example model');
  assert.deepEqual(b.config.config.capabilities, {
    inputTypes: ['text'],
    outputTypes: ['text'],
    knowledgeCutoff: '2024-06-01T00:00:00Z',
    reasoning: true,
    toolUsage: true,
    reward: false,
    languages: ['en', 'fr'],
  });
});

test('reproducible: the same tree built twice gives the same manifest digest (SOURCE_DATE_EPOCH and --no-creation-time)', async () => {
  const ctx = basicModel();
  for (const [flags, env] of [
    [[], { SOURCE_DATE_EPOCH: '1700000000' }],
    [['--no-creation-time'], {}],
    [['--raw=false', '--no-creation-time'], {}],
  ] as Array<[string[], NodeJS.ProcessEnv]>) {
    const a = await buildIn(ctx, 'example.com/r:v1', flags, env);
    await new Promise((r) => setTimeout(r, 1100)); // a clock tick must not change anything
    const b = await buildIn(ctx, 'example.com/r:v1', flags, env);
    assert.equal(a.digest, b.digest, `flags ${flags.join(' ')}`);
  }
  const x = await buildIn(ctx, 'example.com/r:v1');
  await new Promise((r) => setTimeout(r, 20));
  const y = await buildIn(ctx, 'example.com/r:v1');
  assert.notEqual(x.digest, y.digest, 'without pinning, createdAt differs');
});

test('tar layers are deterministic: golden digest for a fixed file with SOURCE_DATE_EPOCH', async () => {
  const ctx = makeModel({ 'weights.bin': 'hello tar layer\n' }, 'MODEL weights.bin\n');
  const b = await buildIn(ctx, 'example.com/t:v1', ['--raw=false'], { SOURCE_DATE_EPOCH: '1700000000' });
  const l = b.manifest.layers[0];
  assert.equal(l.mediaType, 'application/vnd.cncf.model.weight.v1.tar');
  const tarBytes = blob(b.store, l.digest);
  // header: name, mode 0644, uid/gid 0, empty uname/gname, mtime = SOURCE_DATE_EPOCH
  assert.equal(tarBytes.subarray(0, 11).toString(), 'weights.bin');
  assert.equal(tarBytes.subarray(100, 107).toString(), '000644 ');
  assert.equal(tarBytes.subarray(108, 115).toString(), '000000 ');
  assert.equal(tarBytes.subarray(116, 123).toString(), '000000 ');
  assert.equal(parseInt(tarBytes.subarray(136, 147).toString(), 8), 1700000000);
  assert.equal(tarBytes.subarray(265, 297).toString().replace(/\0/g, ''), '');
  assert.equal(l.digest, GOLDEN_TAR_DIGEST);
});
const GOLDEN_TAR_DIGEST = 'sha256:c7c050ae18b2ca37f82148002cfa072ab6f0a77523de82ab627ea3589bd4c403';

test('a Modelfile can come from standard input (-f -)', async () => {
  const ctx = makeModel({ 'm.bin': 'x' }, '');
  const store = tmpDir();
  const r = await runCli(['--storage-dir', store, 'build', '-t', 'example.com/s:v1', '-f', '-', ctx], { stdin: 'MODEL m.bin\n' });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /Successfully built model artifact: example.com\/s:v1/);
});

test('paths: missing literal path is an error, empty glob warns, ** works, duplicates are packed once', async () => {
  const ctx = makeModel({ 'a/b/c.bin': 'c', 'a/d.bin': 'd', 'x.json': '{}' }, 'MODEL missing.bin\n');
  const store = tmpDir();
  let r = await runCli(['--storage-dir', store, 'build', '-t', 'example.com/p:v1', '-f', path.join(ctx, 'Modelfile'), ctx]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /does not exist: missing\.bin/);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');

  writeFileSync(path.join(ctx, 'Modelfile'), 'MODEL **/*.bin\nMODEL a/d.bin\nCONFIG *.json\nDOC *.json\nDOC *.pdf\n');
  r = await runCli(['--json', '--storage-dir', store, 'build', '-t', 'example.com/p:v1', '-f', path.join(ctx, 'Modelfile'), ctx]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /"\*\.pdf" matches no files/);
  assert.match(r.stderr, /x\.json is matched by DOC/);
  const res = JSON.parse(r.stdout);
  assert.deepEqual(res.layers.map((l: any) => l.path), ['x.json', 'a/b/c.bin', 'a/d.bin']);
});

test('symlinks are followed inside the context and refused when they escape it', async () => {
  const outside = tmpDir('modctl-outside-');
  writeFileSync(path.join(outside, 'secret.bin'), 'secret');
  const ctx = makeModel({ 'real.bin': 'real' }, 'MODEL link-in.bin\n');
  symlinkSync('real.bin', path.join(ctx, 'link-in.bin'));
  symlinkSync(path.join(outside, 'secret.bin'), path.join(ctx, 'link-out.bin'));
  const ok = await buildIn(ctx, 'example.com/l:v1');
  assert.equal(ok.manifest.layers[0].digest, sha256File(path.join(ctx, 'real.bin')));
  writeFileSync(path.join(ctx, 'Modelfile'), 'MODEL link-out.bin\n');
  const r = await runCli(['--storage-dir', tmpDir(), 'build', '-t', 'example.com/l:v1', '-f', path.join(ctx, 'Modelfile'), ctx]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /leads outside the build context/);
  // a glob silently leaves escaping links out
  writeFileSync(path.join(ctx, 'Modelfile'), 'MODEL *.bin\n');
  const g = await buildIn(ctx, 'example.com/l:v1');
  assert.deepEqual(g.manifest.layers.map((l: any) => l.annotations['org.cncf.model.filepath']), ['link-in.bin', 'real.bin']);
});

test('store concurrency: parallel builds into one store all end up tagged', async () => {
  const ctx = basicModel();
  const store = tmpDir();
  const N = 4;
  const runs = Array.from({ length: N }, (_, i) =>
    new Promise<number>((resolve) => {
      const p = spawn(process.execPath, [BIN, '--storage-dir', store, 'build', '-t', `example.com/par:v${i}`, '-f', path.join(ctx, 'Modelfile'), ctx], { stdio: 'ignore' });
      p.on('exit', (code) => resolve(code ?? -1));
    }),
  );
  assert.deepEqual(await Promise.all(runs), Array(N).fill(0));
  const index = JSON.parse(readFileSync(path.join(store, 'index.json'), 'utf8'));
  const names = index.manifests.map((d: any) => d.annotations['org.opencontainers.image.ref.name']).sort();
  assert.deepEqual(names, Array.from({ length: N }, (_, i) => `example.com/par:v${i}`));
  assert.deepEqual(readdirSync(path.join(store, 'ingest')).filter((n) => !n.endsWith('.partial')), [], 'no temp files left behind');
});

test('extract round trip is byte-identical (nested dirs, unicode names, empty file, executable, directory layer)', async () => {
  const files = {
    'config.json': '{"a":1}',
    'weights/part-1.safetensors': Buffer.alloc(200_000, 7),
    'weights/deep/nested/part-2.bin': Buffer.from([0, 1, 2, 3]),
    'docs/ünïcødé ファイル.md': 'unicode\n',
    'empty.txt': '',
    'run.sh': { content: '#!/bin/sh\necho run\n', mode: 0o755 },
    'tree/a.txt': 'a',
    'tree/sub/b.txt': 'b',
    'tree/sub/tool.sh': { content: '#!/bin/sh\n', mode: 0o755 },
  };
  const ctx = makeModel(files, 'CONFIG config.json\nMODEL weights/**\nDOC docs/*\nDOC empty.txt\nCODE run.sh\nCODE tree\n');
  for (const raw of ['true', 'false']) {
    const b = await buildIn(ctx, 'example.com/x:v1', [`--raw=${raw}`]);
    const out = path.join(tmpDir('modctl-out-'), 'out');
    const r = await runCli(['--storage-dir', b.store, 'extract', 'example.com/x:v1', '--output', out]);
    assert.equal(r.code, 0, r.stderr);
    for (const [rel, v] of Object.entries(files)) {
      const want = typeof v === 'string' || Buffer.isBuffer(v) ? Buffer.from(v) : Buffer.from(v.content);
      assert.deepEqual(readFileSync(path.join(out, rel)), want, `${rel} (raw=${raw})`);
      if (!(typeof v === 'string' || Buffer.isBuffer(v))) assert.equal(statSync(path.join(out, rel)).mode & 0o777, 0o755, `${rel} mode`);
    }
    assert.equal(statSync(path.join(out, 'config.json')).mode & 0o111, 0);
    assert.ok(!existsSync(path.join(out, 'Modelfile')));
  }
});

test('skopeo and umoci can read the store', async () => {
  const ctx = basicModel();
  const b = await buildIn(ctx, 'example.com/interop:v1');
  const dest = path.join(tmpDir('modctl-skopeo-'), 'copy');
  await execFileP('skopeo', ['copy', `oci:${b.store}:example.com/interop:v1`, `oci:${dest}:copied`]);
  const idx = JSON.parse(readFileSync(path.join(dest, 'index.json'), 'utf8'));
  assert.equal(idx.manifests[0].digest, b.digest, 'skopeo copies the manifest byte-identically');
  const { stdout } = await execFileP('umoci', ['ls', '--layout', b.store]);
  assert.match(stdout, /example\.com\/interop:v1/);
});

