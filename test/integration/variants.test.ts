// Model variants as an OCI image index against a real docker-registry: `index create` (local and --remote), push,
// inspect (local and --remote) listing the variants, and --variant on pull, extract and fetch, with clear errors for
// a missing, ambiguous or absent selection.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { runCli } from '../support/run-cli.js';
import { tmpDir, listFiles } from '../support/tmp.js';
import { startRegistry, type RegistryHandle } from '../support/registry.js';
import { LocalStore } from '../../src/content/local-store.js';

const OCI = 'application/vnd.oci.image.manifest.v1+json';
const INDEX = 'application/vnd.oci.image.index.v1+json';
const MODEL = 'application/vnd.cncf.model.manifest.v1+json';
const sha = (b: Buffer | string) => 'sha256:' + createHash('sha256').update(b).digest('hex');

const VARIANTS = {
  q4: { quantization: 'Q4_K_M', file: 'tiny-q4_k_m.gguf', bytes: Buffer.concat([Buffer.from('GGUF'), Buffer.alloc(40_000, 4)]) },
  q8: { quantization: 'Q8_0', file: 'tiny-q8_0.gguf', bytes: Buffer.concat([Buffer.from('GGUF'), Buffer.alloc(70_000, 8)]) },
};
const README = Buffer.from('# tiny\n');

let reg: RegistryHandle;
const srcStore = tmpDir();
let repo: string;
let indexRef: string;
let indexDigest: string;

/** A ModelPack artifact as modctl builds it from `FORMAT gguf / PARAMSIZE 1B / QUANTIZATION … / MODEL … / DOC README.md`. */
async function buildVariant(store: LocalStore, ref: string, v: (typeof VARIANTS)['q4']): Promise<void> {
  const layer = async (mediaType: string, file: string, bytes: Buffer) => {
    const put = await store.putBytes(bytes);
    return {
      mediaType,
      digest: put.digest,
      size: put.size,
      annotations: {
        'org.cncf.model.filepath': file,
        'org.cncf.model.file.metadata+json': JSON.stringify({ name: file, mode: 420, uid: 0, gid: 0, size: bytes.length, mtime: '2025-01-01T00:00:00Z', typeflag: 0 }),
        'org.opencontainers.image.title': file,
      },
    };
  };
  const layers = [await layer('application/vnd.cncf.model.weight.v1.raw', v.file, v.bytes), await layer('application/vnd.cncf.model.doc.v1.raw', 'README.md', README)];
  const configBytes = Buffer.from(
    JSON.stringify({
      descriptor: { name: 'tiny' },
      modelfs: { type: 'layers', diffIds: layers.map((l) => l.digest) },
      config: { format: 'gguf', paramSize: '1B', quantization: v.quantization },
    }),
  );
  const config = await store.putBytes(configBytes);
  const manifest = Buffer.from(
    JSON.stringify({ schemaVersion: 2, mediaType: OCI, artifactType: MODEL, config: { mediaType: 'application/vnd.cncf.model.config.v1+json', ...config }, layers }),
  );
  const put = await store.putBytes(manifest);
  await store.tag(ref, { mediaType: OCI, digest: put.digest, size: put.size, artifactType: MODEL });
}

before(async () => {
  reg = await startRegistry();
  repo = `${reg.host}/variants/tiny`;
  indexRef = `${repo}:latest`;
  const store = await LocalStore.open(srcStore);
  await buildVariant(store, `${repo}:q4`, VARIANTS.q4);
  await buildVariant(store, `${repo}:q8`, VARIANTS.q8);
  const r = await cli(['--json', '--storage-dir', srcStore, 'index', 'create', indexRef, `${repo}:q4`, `${repo}:q8`]);
  assert.equal(r.code, 0, r.stderr);
  indexDigest = JSON.parse(r.stdout).digest;
  // the index (with both variants), and each variant under its own tag
  for (const ref of [indexRef, `${repo}:q4`, `${repo}:q8`]) {
    const p = await cli(['--storage-dir', srcStore, 'push', '--plain-http', ref]);
    assert.equal(p.code, 0, p.stderr);
  }
});
after(async () => {
  await reg?.stop();
});

function cli(args: string[]) {
  return runCli(args, { env: { MODCTL_RETRY_BASE_MS: '5' } });
}


function assertVariantTree(out: string, v: (typeof VARIANTS)['q4']) {
  assert.deepEqual(listFiles(out), ['README.md', v.file].sort());
  assert.deepEqual(readFileSync(path.join(out, v.file)), v.bytes);
  assert.deepEqual(readFileSync(path.join(out, 'README.md')), README);
}

test('index create writes an OCI index with variant annotations read from the configs', async () => {
  const r = await cli(['--storage-dir', srcStore, 'inspect', '--manifest', indexRef]);
  assert.equal(r.code, 0, r.stderr);
  const idx = JSON.parse(r.stdout);
  assert.equal(idx.mediaType, INDEX);
  assert.equal(idx.artifactType, MODEL);
  assert.equal(sha(r.stdout.trimEnd()), indexDigest);
  assert.deepEqual(
    idx.manifests.map((m: any) => ({ mediaType: m.mediaType, artifactType: m.artifactType, annotations: m.annotations })),
    ['Q4_K_M', 'Q8_0'].map((q) => ({
      mediaType: OCI,
      artifactType: MODEL,
      annotations: { 'org.cncf.model.variant.quantization': q, 'org.cncf.model.variant.format': 'gguf', 'org.cncf.model.variant.paramSize': '1B' },
    })),
  );
  // local inspect lists the variants too
  const text = await cli(['--storage-dir', srcStore, 'inspect', indexRef]);
  assert.match(text.stdout, /image index \(2 variants\)/);
  assert.match(text.stdout, /quantization=Q4_K_M format=gguf paramSize=1B/);
  assert.match(text.stdout, /quantization=Q8_0 format=gguf paramSize=1B/);
});

test('inspect --remote lists both variants; --variant inspects one', async () => {
  let r = await cli(['--json', 'inspect', '--remote', '--plain-http', indexRef]);
  assert.equal(r.code, 0, r.stderr);
  const s = JSON.parse(r.stdout);
  assert.equal(s.Digest, indexDigest);
  assert.equal(s.MediaType, INDEX);
  assert.deepEqual(
    s.Variants.map((v: any) => v.Variant),
    [
      { quantization: 'Q4_K_M', format: 'gguf', paramSize: '1B' },
      { quantization: 'Q8_0', format: 'gguf', paramSize: '1B' },
    ],
  );
  r = await cli(['inspect', '--remote', '--plain-http', indexRef]);
  assert.match(r.stdout, /image index \(2 variants\)[\s\S]*quantization=Q4_K_M[\s\S]*quantization=Q8_0/);
  r = await cli(['--json', 'inspect', '--remote', '--plain-http', indexRef, '--variant', 'quantization=q8_0']);
  assert.equal(r.code, 0, r.stderr);
  const one = JSON.parse(r.stdout);
  assert.equal(one.Quantization, 'Q8_0');
  assert.deepEqual(one.Layers.map((l: any) => l.Filepath), [VARIANTS.q8.file, 'README.md']);
});

test('pull --variant --extract-dir pulls and extracts only that variant', async () => {
  const store = tmpDir();
  const out = path.join(tmpDir(), 'out');
  let r = await cli(['--json', '--storage-dir', store, 'pull', '--plain-http', indexRef, '--variant', 'quantization=Q8_0', '--extract-dir', out]);
  assert.equal(r.code, 0, r.stderr);
  assertVariantTree(out, VARIANTS.q8);
  // only the Q8_0 weights were downloaded; the reference is tagged to that variant locally
  const blobs = listFiles(path.join(store, 'blobs')).map((b) => 'sha256:' + path.basename(b));
  assert.ok(blobs.includes(sha(VARIANTS.q8.bytes)));
  assert.ok(!blobs.includes(sha(VARIANTS.q4.bytes)), 'the other variant was not downloaded');
  r = await cli(['--json', '--storage-dir', store, 'inspect', indexRef]);
  assert.equal(JSON.parse(r.stdout).Quantization, 'Q8_0');

  const remote = path.join(tmpDir(), 'remote');
  r = await cli(['--storage-dir', tmpDir(), 'pull', '--plain-http', indexRef, '--variant', 'QUANTIZATION=q4_k_m', '--extract-dir', remote, '--extract-from-remote']);
  assert.equal(r.code, 0, r.stderr);
  assertVariantTree(remote, VARIANTS.q4);
});

test('fetch --variant picks the variant before matching patterns', async () => {
  const out = path.join(tmpDir(), 'out');
  const r = await cli(['--json', 'fetch', '--plain-http', indexRef, '--variant', 'quantization=Q4_K_M', '--variant', 'paramSize=1b', '--output', out, '--patterns', '*.gguf']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(listFiles(out), [VARIANTS.q4.file]);
  assert.deepEqual(readFileSync(path.join(out, VARIANTS.q4.file)), VARIANTS.q4.bytes);
  const res = JSON.parse(r.stdout);
  assert.equal(res.digest, indexDigest);
  assert.ok(res.variantDigest);
  const stdout = await cli(['fetch', '--plain-http', indexRef, '--variant', 'quantization=Q8_0', '--output', '-', '--patterns', '*.gguf']);
  assert.equal(stdout.code, 0, stdout.stderr);
  assert.deepEqual(stdout.stdoutBytes, VARIANTS.q8.bytes);
});

test('pull of the whole index, then extract --variant from the local store', async () => {
  const store = tmpDir();
  let r = await cli(['--storage-dir', store, 'pull', '--plain-http', indexRef]);
  assert.equal(r.code, 0, r.stderr);
  const out = path.join(tmpDir(), 'out');
  r = await cli(['--storage-dir', store, 'extract', indexRef, '--output', out, '--variant', 'quantization=Q4_K_M']);
  assert.equal(r.code, 0, r.stderr);
  assertVariantTree(out, VARIANTS.q4);
  r = await cli(['--storage-dir', store, 'extract', indexRef, '--output', path.join(tmpDir(), 'x')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /image index with 2 variants; pick one with --variant/);
});

test('missing, ambiguous and absent variant selections are clear errors listing the variants', async () => {
  const store = tmpDir();
  const out = path.join(tmpDir(), 'out');
  let r = await cli(['--storage-dir', store, 'pull', '--plain-http', indexRef, '--variant', 'quantization=Q5_0', '--extract-dir', out]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /no variant of .*tiny:latest matches quantization=Q5_0; the variants are:/);
  assert.match(r.stderr, /quantization=Q4_K_M format=gguf paramSize=1B[\s\S]*quantization=Q8_0 format=gguf paramSize=1B/);

  r = await cli(['--json', 'fetch', '--plain-http', indexRef, '--variant', 'format=gguf', '--output', out, '--patterns', '*']);
  assert.equal(r.code, 1);
  const e = JSON.parse(r.stdout).error;
  assert.equal(e.code, 'E_VARIANT_AMBIGUOUS');
  assert.match(e.message, /2 variants of .* match format=gguf/);

  r = await cli(['--storage-dir', store, 'pull', '--plain-http', indexRef, '--extract-dir', out]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /image index with 2 variants; pick one with --variant key=value/);
  assert.match(r.stderr, /Q4_K_M[\s\S]*Q8_0/);
  assert.deepEqual(listFiles(path.join(store, 'blobs')), [], 'nothing was downloaded');
  assert.deepEqual(listFiles(out), []);

  r = await cli(['pull', '--plain-http', indexRef, '--variant', 'quantization', '--extract-dir', out]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--variant needs key=value/);

  r = await cli(['fetch', '--plain-http', `${repo}:q4`, '--variant', 'quantization=Q4_K_M', '--output', out, '--patterns', '*']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /not an image index/);
});

test('index create --remote builds the same index from the variants on the registry and pushes it', async () => {
  const ref = `${repo}:remote-index`;
  let r = await cli(['--json', 'index', 'create', '--remote', '--plain-http', ref, `${repo}:q4`, `${repo}:q8`]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).digest, indexDigest, 'same variants → the same index bytes');
  r = await cli(['--json', 'inspect', '--remote', '--plain-http', ref]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).Variants.length, 2);

  r = await cli(['index', 'create', '--remote', '--plain-http', ref, `${reg.host}/elsewhere/tiny:q4`]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /not in .*variants\/tiny; with --remote every variant must be in the index's repository/);
});
