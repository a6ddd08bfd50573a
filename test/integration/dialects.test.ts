// Every artifact dialect the CLI reads (peer-formats.md §2–§5, modelpack.md §2–§3), built the way the peer tool writes
// it, pushed to a real docker-registry, then read back with pull --extract-dir, pull --extract-from-remote, extract,
// fetch --patterns and inspect (local and --remote): file names and bytes, and the dialect named by inspect.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import tarStream from 'tar-stream';
import { runCli } from '../support/run-cli.js';
import { tmpDir, listFiles } from '../support/tmp.js';
import { startRegistry, type RegistryHandle } from '../support/registry.js';
import { LocalStore } from '../../src/content/local-store.js';

const OCI = 'application/vnd.oci.image.manifest.v1+json';
const SCHEMA2 = 'application/vnd.docker.distribution.manifest.v2+json';
const sha = (b: Buffer | string) => 'sha256:' + createHash('sha256').update(b).digest('hex');
const meta = (name: string, size: number) => JSON.stringify({ name, mode: 420, uid: 0, gid: 0, size, mtime: '2025-01-01T00:00:00Z', typeflag: 0 });

type Entry = { name: string; content?: string | Buffer; dir?: boolean };

async function tarOf(entries: Entry[]): Promise<Buffer> {
  const pack = tarStream.pack();
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const c of pack) chunks.push(c as Buffer);
  })();
  for (const e of entries) {
    if (e.dir) pack.entry({ name: e.name, type: 'directory', mode: 0o755, mtime: new Date(0), uid: 1000, gid: 0 });
    else pack.entry({ name: e.name, mode: 0o644, mtime: new Date(0), uid: 1000, gid: 0 }, Buffer.from(e.content ?? ''));
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

interface Dialect {
  name: string;
  /** inspect's ArtifactFormat / text `Format:` */
  format: string;
  /** Extracted tree: path → bytes. */
  files: Record<string, Buffer>;
  /** fetch --patterns and the files it must produce. */
  patterns: string[];
  fetched: string[];
  /** Expected inspect fields (subset). */
  inspect: Record<string, unknown>;
  layerPaths: Array<string | undefined>;
  /** Expected warning on extract (e.g. a skipped untitled layer). */
  warning?: RegExp;
  ref?: string;
}

let reg: RegistryHandle;
const srcStore = tmpDir();
const dialects: Dialect[] = [];

async function publish(store: LocalStore, name: string, manifest: Record<string, unknown>, mediaType = OCI): Promise<string> {
  const bytes = Buffer.from(JSON.stringify(manifest));
  const put = await store.putBytes(bytes);
  const ref = `${reg.host}/dialects/${name}:v1`;
  await store.tag(ref, { mediaType, digest: put.digest, size: put.size });
  return ref;
}

/** Store a blob; returns its descriptor (plus annotations). */
async function blob(store: LocalStore, mediaType: string, bytes: Buffer | string, annotations?: Record<string, string>) {
  const b = Buffer.from(bytes);
  const put = await store.putBytes(b);
  const d: Record<string, unknown> = { mediaType, digest: put.digest, size: put.size };
  if (annotations) d.annotations = annotations;
  return d as { mediaType: string; digest: string; size: number; annotations?: Record<string, string> };
}

async function buildFixtures(store: LocalStore): Promise<void> {
  // --- ModelPack, legacy `cnai` ids, tar+gzip layers (modctl v0.2.2 with --raw=false and a gzip codec) ---------------
  {
    const weights = Buffer.alloc(70_000, 3).fill(9, 30_000);
    const wTar = await tarOf([{ name: 'model.safetensors', content: weights }]);
    const cTar = await tarOf([{ name: 'config.json', content: '{"model_type":"qwen2"}' }]);
    const dTar = await tarOf([{ name: 'docs', dir: true }, { name: 'docs/README.md', content: '# cnai\n' }]);
    const ann = (p: string) => ({ 'org.cnai.model.filepath': p, 'org.cnai.model.file.metadata+json': meta(path.basename(p), 1) });
    const layers = [
      await blob(store, 'application/vnd.cnai.model.weight.v1.tar+gzip', gzipSync(wTar), ann('model.safetensors')),
      await blob(store, 'application/vnd.cnai.model.weight.config.v1.tar+gzip', gzipSync(cTar), ann('config.json')),
      await blob(store, 'application/vnd.cnai.model.doc.v1.tar+gzip', gzipSync(dTar), ann('docs')),
    ];
    const config = await blob(
      store,
      'application/vnd.cnai.model.config.v1+json',
      JSON.stringify({
        descriptor: { name: 'cnai-model', family: 'qwen2', createdAt: '2025-06-01T00:00:00Z' },
        modelfs: { type: 'layers', diffIds: [sha(wTar), sha(cTar), sha(dTar)] },
        config: { format: 'safetensors', paramSize: '0.5B', precision: 'bfloat16' },
      }),
    );
    const ref = await publish(store, 'modelpack-cnai', { schemaVersion: 2, mediaType: OCI, artifactType: 'application/vnd.cnai.model.manifest.v1+json', config, layers });
    dialects.push({
      name: 'modelpack-cnai',
      ref,
      format: 'modelpack-legacy',
      files: { 'model.safetensors': weights, 'config.json': Buffer.from('{"model_type":"qwen2"}'), 'docs/README.md': Buffer.from('# cnai\n') },
      patterns: ['*.json', 'doc*'],
      fetched: ['config.json', 'docs/README.md'],
      inspect: { Name: 'cnai-model', Family: 'qwen2', Format: 'safetensors', ParamSize: '0.5B', Precision: 'bfloat16', CreatedAt: '2025-06-01T00:00:00Z' },
      layerPaths: ['model.safetensors', 'config.json', 'docs'],
    });
  }

  // --- Docker model-runner v0.1: GGUF + license (docker model package --gguf … --license …) -------------------------
  {
    const gguf = Buffer.concat([Buffer.from('GGUF\x03\x00\x00\x00'), Buffer.alloc(50_000, 1)]);
    const license = Buffer.from('Apache License 2.0\n');
    const dockerAnn = (p: string, size: number) => ({
      'org.cncf.model.filepath': p,
      'org.cncf.model.file.metadata+json': meta(p, size),
      'org.cncf.model.file.mediatype.untested': 'false',
    });
    const layers = [
      await blob(store, 'application/vnd.docker.ai.gguf.v3', gguf, dockerAnn('tiny-q4_k_m.gguf', gguf.length)),
      await blob(store, 'application/vnd.docker.ai.license', license, dockerAnn('LICENSE', license.length)),
    ];
    const config = await blob(
      store,
      'application/vnd.docker.ai.model.config.v0.1+json',
      JSON.stringify({
        config: { format: 'gguf', quantization: 'Q4_K_M', parameters: '494.03M', architecture: 'qwen2', size: '48.8KiB', gguf: { 'general.name': 'Tiny Qwen' }, context_size: 4096 },
        descriptor: { created: '2025-05-01T00:00:00Z' },
        rootfs: { type: 'rootfs', diff_ids: layers.map((l) => l.digest) },
      }),
    );
    const ref = await publish(store, 'docker-v01', { schemaVersion: 2, mediaType: OCI, config, layers });
    dialects.push({
      name: 'docker-v01',
      ref,
      format: 'docker',
      // v0.1 bundles use fixed names (model.gguf)
      files: { 'model.gguf': gguf, LICENSE: license },
      patterns: ['model.gguf'],
      fetched: ['model.gguf'],
      inspect: { Name: 'Tiny Qwen', Architecture: 'qwen2', Format: 'gguf', Quantization: 'Q4_K_M', ParamSize: '494.03M', ContextLength: 4096, CreatedAt: '2025-05-01T00:00:00Z' },
      layerPaths: ['model.gguf', 'LICENSE'],
    });
  }

  // --- Docker model-runner v0.2: safetensors directory, one raw layer per file ---------------------------------------
  {
    const st = Buffer.alloc(40_000, 7);
    const files: Record<string, Buffer> = {
      'model.safetensors': st,
      'config.json': Buffer.from('{"architectures":["Qwen2ForCausalLM"]}'),
      'tokenizer/tokenizer.json': Buffer.from('{"version":"1.0"}'),
      LICENSE: Buffer.from('MIT\n'),
    };
    const types: Record<string, string> = {
      'model.safetensors': 'application/vnd.docker.ai.safetensors',
      'config.json': 'application/vnd.docker.ai.model.file',
      'tokenizer/tokenizer.json': 'application/vnd.docker.ai.model.file',
      LICENSE: 'application/vnd.docker.ai.license',
    };
    const layers = [];
    for (const [p, b] of Object.entries(files)) {
      layers.push(await blob(store, types[p], b, { 'org.cncf.model.filepath': p, 'org.cncf.model.file.metadata+json': meta(path.basename(p), b.length), 'org.cncf.model.file.mediatype.untested': 'false' }));
    }
    const config = await blob(
      store,
      'application/vnd.docker.ai.model.config.v0.2+json',
      JSON.stringify({
        config: { format: 'safetensors', quantization: 'BF16', parameters: '494.03M', architecture: 'qwen2', size: '39KiB', safetensors: { tensor_count: '1' }, context_size: 32768 },
        descriptor: { created: '2025-05-02T00:00:00Z' },
        rootfs: { type: 'rootfs', diff_ids: layers.map((l) => l.digest) },
      }),
    );
    const ref = await publish(store, 'docker-v02', { schemaVersion: 2, mediaType: OCI, config, layers });
    dialects.push({
      name: 'docker-v02',
      ref,
      format: 'docker',
      files,
      patterns: ['tokenizer/**', 'LICENSE'],
      fetched: ['tokenizer/tokenizer.json', 'LICENSE'],
      inspect: { Format: 'safetensors', Quantization: 'BF16', ContextLength: 32768 },
      layerPaths: Object.keys(files),
    });
  }

  // --- KitOps ModelKit (kit pack, current): Kitfile in the config, tar layers named by context-relative path --------
  {
    const gguf = Buffer.concat([Buffer.from('GGUF'), Buffer.alloc(30_000, 4)]);
    const modelTar = await tarOf([{ name: 'models', dir: true }, { name: 'models/tiny.gguf', content: gguf }]);
    const codeTar = await tarOf([
      { name: 'src', dir: true },
      { name: 'src/train.py', content: 'print("train")\n' },
      { name: 'src/util', dir: true },
      { name: 'src/util/helpers.py', content: 'X = 1\n' },
    ]);
    const docsTar = await tarOf([{ name: 'README.md', content: '# tiny kit\n' }]);
    const model = await blob(store, 'application/vnd.kitops.modelkit.model.v1.tar', modelTar, { 'org.cncf.model.filepath': 'models/tiny.gguf' });
    const codeGz = gzipSync(codeTar);
    const code = await blob(store, 'application/vnd.kitops.modelkit.code.v1.tar+gzip', codeGz, { 'org.cncf.model.filepath': 'src' });
    const docs = await blob(store, 'application/vnd.kitops.modelkit.docs.v1.tar', docsTar, { 'org.cncf.model.filepath': 'README.md' });
    const kitfile = {
      manifestVersion: '1.0.0',
      package: { name: 'tiny-kit', version: '1.0.0', authors: ['Jane'] },
      model: { name: 'tiny', path: 'models/tiny.gguf', format: 'gguf', digest: model.digest, diffId: sha(modelTar) },
      code: [{ path: 'src', description: 'training code', digest: code.digest, diffId: sha(codeTar) }],
      docs: [{ path: 'README.md', digest: docs.digest, diffId: sha(docsTar) }],
    };
    const config = await blob(store, 'application/vnd.kitops.modelkit.config.v1+json', JSON.stringify(kitfile));
    const ref = await publish(store, 'kitops', {
      schemaVersion: 2,
      mediaType: OCI,
      artifactType: 'application/vnd.kitops.modelkit.manifest.v1+json',
      config,
      layers: [model, code, docs],
      annotations: { 'ml.kitops.modelkit.cli-version': '1.10.0' },
    });
    dialects.push({
      name: 'kitops',
      ref,
      format: 'kitops',
      files: { 'models/tiny.gguf': gguf, 'src/train.py': Buffer.from('print("train")\n'), 'src/util/helpers.py': Buffer.from('X = 1\n'), 'README.md': Buffer.from('# tiny kit\n') },
      patterns: ['src'],
      fetched: ['src/train.py', 'src/util/helpers.py'],
      inspect: { Name: 'tiny-kit', Format: 'gguf' },
      layerPaths: ['models/tiny.gguf', 'src', 'README.md'],
    });
  }

  // --- Older KitOps ModelKit: no digest/diffId in the config, tar entries relative to the entry path's parent --------
  {
    const onnx = Buffer.alloc(20_000, 8);
    const modelTar = await tarOf([{ name: 'model.onnx', content: onnx }]);
    const codeTar = await tarOf([{ name: 'lib', dir: true }, { name: 'lib/run.py', content: 'run()\n' }]);
    const model = await blob(store, 'application/vnd.kitops.modelkit.model.v1.tar+gzip', gzipSync(modelTar));
    const code = await blob(store, 'application/vnd.kitops.modelkit.code.v1.tar', codeTar);
    const kitfile = { manifestVersion: 'v1.0.0', package: { name: 'old-kit' }, model: { name: 'm', path: 'models/deep/model.onnx', format: 'onnx' }, code: [{ path: 'src/lib' }] };
    const config = await blob(store, 'application/vnd.kitops.modelkit.config.v1+json', JSON.stringify(kitfile));
    const ref = await publish(store, 'kitops-old', { schemaVersion: 2, mediaType: OCI, config, layers: [model, code] });
    dialects.push({
      name: 'kitops-old',
      ref,
      format: 'kitops',
      files: { 'models/deep/model.onnx': onnx, 'src/lib/run.py': Buffer.from('run()\n') },
      patterns: ['models/**'],
      fetched: ['models/deep/model.onnx'],
      inspect: { Name: 'old-kit', Format: 'onnx' },
      layerPaths: ['models/deep/model.onnx', 'src/lib'],
    });
  }

  // --- ORAS: `oras push ref model.gguf notes.txt:text/plain weights/` (+ an untitled layer, which pull skips) -------
  {
    const gguf = Buffer.concat([Buffer.from('GGUF'), Buffer.alloc(10_000, 2)]);
    const dirTar = await tarOf([
      { name: 'weights/', dir: true },
      { name: 'weights/a.bin', content: Buffer.alloc(3_000, 5) },
      { name: 'weights/sub/', dir: true },
      { name: 'weights/sub/b.bin', content: Buffer.alloc(1_000, 6) },
    ]);
    const layers = [
      // a plain file labelled with ORAS's default (tar) media type: its bytes are the file, not an archive
      await blob(store, 'application/vnd.oci.image.layer.v1.tar', gguf, { 'org.opencontainers.image.title': 'model.gguf' }),
      await blob(store, 'text/plain', 'remember the milk\n', { 'org.opencontainers.image.title': 'notes.txt' }),
      await blob(store, 'application/vnd.oci.image.layer.v1.tar+gzip', gzipSync(dirTar), {
        'org.opencontainers.image.title': 'weights',
        'io.deis.oras.content.digest': sha(dirTar),
        'io.deis.oras.content.unpack': 'true',
      }),
      await blob(store, 'application/vnd.oci.image.layer.v1.tar', 'untitled'),
    ];
    const empty = await blob(store, 'application/vnd.oci.empty.v1+json', '{}');
    const ref = await publish(store, 'oras', {
      schemaVersion: 2,
      mediaType: OCI,
      artifactType: 'application/vnd.unknown.artifact.v1',
      config: { ...empty, data: 'e30=' },
      layers,
      annotations: { 'org.opencontainers.image.created': '2025-01-01T00:00:00Z' },
    });
    dialects.push({
      name: 'oras',
      ref,
      format: 'oras',
      files: { 'model.gguf': gguf, 'notes.txt': Buffer.from('remember the milk\n'), 'weights/a.bin': Buffer.alloc(3_000, 5), 'weights/sub/b.bin': Buffer.alloc(1_000, 6) },
      patterns: ['weights', 'notes.*'],
      fetched: ['notes.txt', 'weights/a.bin', 'weights/sub/b.bin'],
      inspect: { CreatedAt: '2025-01-01T00:00:00Z' },
      layerPaths: ['model.gguf', 'notes.txt', 'weights', undefined],
      warning: /has no file name; skipped/,
    });
  }

  // --- Ollama: Docker schema2 manifest, role layers ---------------------------------------------------------------
  {
    const gguf = Buffer.concat([Buffer.from('GGUF'), Buffer.alloc(25_000, 3)]);
    const files: Record<string, Buffer> = {
      'model.gguf': gguf,
      template: Buffer.from('{{ .System }} {{ .Prompt }}'),
      'params.json': Buffer.from('{"stop":["<|eot_id|>"]}'),
      'license-1': Buffer.from('LLAMA 3.2 COMMUNITY LICENSE\n'),
    };
    const layers = [
      await blob(store, 'application/vnd.ollama.image.model', files['model.gguf']),
      await blob(store, 'application/vnd.ollama.image.template', files.template),
      await blob(store, 'application/vnd.ollama.image.params', files['params.json']),
      await blob(store, 'application/vnd.ollama.image.license', files['license-1']),
    ];
    const config = await blob(
      store,
      'application/vnd.docker.container.image.v1+json',
      JSON.stringify({
        model_format: 'gguf',
        model_family: 'llama',
        model_families: ['llama'],
        model_type: '1B',
        file_type: 'Q4_0',
        architecture: 'amd64',
        os: 'linux',
        rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) },
      }),
    );
    const ref = await publish(store, 'ollama', { schemaVersion: 2, mediaType: SCHEMA2, config, layers }, SCHEMA2);
    dialects.push({
      name: 'ollama',
      ref,
      format: 'ollama',
      files,
      patterns: ['params.json', 'template'],
      fetched: ['params.json', 'template'],
      inspect: { Family: 'llama', ParamSize: '1B', Quantization: 'Q4_0', Format: 'gguf' },
      layerPaths: ['model.gguf', 'template', 'params.json', 'license-1'],
    });
  }
}

before(async () => {
  reg = await startRegistry();
  const store = await LocalStore.open(srcStore);
  await buildFixtures(store);
  for (const d of dialects) {
    const r = await cli(['--storage-dir', srcStore, 'push', '--plain-http', d.ref!]);
    assert.equal(r.code, 0, `${d.name}: ${r.stderr}`);
  }
});
after(async () => {
  await reg?.stop();
});

function cli(args: string[]) {
  return runCli(args, { env: { MODCTL_RETRY_BASE_MS: '5' } });
}


function assertTree(d: Dialect, out: string, names = Object.keys(d.files)) {
  assert.deepEqual(listFiles(out), [...names].sort(), `${d.name}: files in ${out}`);
  for (const n of names) assert.deepEqual(readFileSync(path.join(out, n)), d.files[n], `${d.name}: ${n}`);
}

function assertInspect(d: Dialect, s: any) {
  assert.equal(s.ArtifactFormat, d.format, `${d.name}: ArtifactFormat`);
  for (const [k, v] of Object.entries(d.inspect)) assert.deepEqual(s[k], v, `${d.name}: ${k}`);
  assert.deepEqual(
    s.Layers.map((l: any) => l.Filepath),
    d.layerPaths,
    `${d.name}: normalised layer paths`,
  );
}

test('pull --extract-dir, then extract and inspect from the local store, for every dialect', async () => {
  for (const d of dialects) {
    const store = tmpDir();
    const out = path.join(tmpDir(), 'out');
    let r = await cli(['--storage-dir', store, 'pull', '--plain-http', d.ref!, '--extract-dir', out]);
    assert.equal(r.code, 0, `${d.name}: ${r.stderr}`);
    assertTree(d, out);
    if (d.warning) assert.match(r.stderr, d.warning, d.name);

    const again = path.join(tmpDir(), 'again');
    r = await cli(['--json', '--storage-dir', store, 'extract', d.ref!, '--output', again]);
    assert.equal(r.code, 0, `${d.name}: ${r.stderr}`);
    assert.equal(JSON.parse(r.stdout).format, d.format);
    assertTree(d, again);

    r = await cli(['--json', '--storage-dir', store, 'inspect', d.ref!]);
    assert.equal(r.code, 0, `${d.name}: ${r.stderr}`);
    assertInspect(d, JSON.parse(r.stdout));
  }
});

test('pull --extract-dir --extract-from-remote writes the same trees and stores nothing', async () => {
  for (const d of dialects) {
    const store = tmpDir();
    const out = path.join(tmpDir(), 'out');
    const r = await cli(['--json', '--storage-dir', store, 'pull', '--plain-http', d.ref!, '--extract-dir', out, '--extract-from-remote']);
    assert.equal(r.code, 0, `${d.name}: ${r.stderr}`);
    assertTree(d, out);
    assert.equal(JSON.parse(r.stdout).format, d.format);
    assert.deepEqual(listFiles(path.join(store, 'blobs')), [], `${d.name}: nothing stored`);
  }
});

test('fetch --patterns matches the normalised paths of every dialect', async () => {
  for (const d of dialects) {
    const out = path.join(tmpDir(), 'out');
    const r = await cli(['--json', 'fetch', '--plain-http', d.ref!, '--output', out, '--patterns', d.patterns.join(',')]);
    assert.equal(r.code, 0, `${d.name}: ${r.stderr}`);
    assertTree(d, out, d.fetched);
  }
  // a fixed Docker v0.1 name streams to stdout
  const docker = dialects.find((d) => d.name === 'docker-v01')!;
  const r = await cli(['fetch', '--plain-http', docker.ref!, '--output', '-', '--patterns', 'model.gguf']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.stdoutBytes, docker.files['model.gguf']);
  // no match lists the normalised names
  const ollama = dialects.find((d) => d.name === 'ollama')!;
  const none = await cli(['fetch', '--plain-http', ollama.ref!, '--output', tmpDir(), '--patterns', '*.safetensors']);
  assert.equal(none.code, 1);
  assert.match(none.stderr, /no layers matched/);
  assert.match(none.stderr, /model\.gguf, template, params\.json, license-1/);
});

test('inspect --remote (JSON and text) names the dialect and shows the normalised summary', async () => {
  for (const d of dialects) {
    let r = await cli(['--json', '--storage-dir', tmpDir(), 'inspect', '--remote', '--plain-http', d.ref!]);
    assert.equal(r.code, 0, `${d.name}: ${r.stderr}`);
    assertInspect(d, JSON.parse(r.stdout));
    r = await cli(['--storage-dir', tmpDir(), 'inspect', '--remote', '--plain-http', d.ref!]);
    assert.equal(r.code, 0, `${d.name}: ${r.stderr}`);
    assert.match(r.stdout, new RegExp(`^Format:\\s+${d.format}$`, 'm'), d.name);
    for (const p of d.layerPaths) if (p) assert.ok(r.stdout.includes(p), `${d.name}: ${p} listed`);
  }
});

test('hostile mapped paths are refused by the extractor: nothing is written outside (or at all)', async () => {
  const store = await LocalStore.open(tmpDir());
  const cases: Array<{ name: string; manifest: Record<string, unknown>; mediaType?: string }> = [];
  // ORAS title escaping the output directory
  cases.push({
    name: 'oras-evil',
    manifest: {
      schemaVersion: 2,
      mediaType: OCI,
      artifactType: 'application/vnd.unknown.artifact.v1',
      config: await blob(store, 'application/vnd.oci.empty.v1+json', '{}'),
      layers: [await blob(store, 'text/plain', 'x', { 'org.opencontainers.image.title': '../../escaped.txt' })],
    },
  });
  // ORAS directory whose tar holds an entry outside its title
  const evilDir = await tarOf([{ name: 'weights/', dir: true }, { name: 'other/evil.bin', content: 'x' }]);
  cases.push({
    name: 'oras-evil-dir',
    manifest: {
      schemaVersion: 2,
      mediaType: OCI,
      config: await blob(store, 'application/vnd.oci.empty.v1+json', '{}'),
      layers: [await blob(store, 'application/vnd.oci.image.layer.v1.tar+gzip', gzipSync(evilDir), { 'org.opencontainers.image.title': 'weights', 'io.deis.oras.content.unpack': 'true' })],
    },
  });
  // legacy KitOps entry path whose parent climbs out
  const kitTar = await tarOf([{ name: 'x.py', content: 'x' }]);
  const kitCode = await blob(store, 'application/vnd.kitops.modelkit.code.v1.tar', kitTar);
  cases.push({
    name: 'kitops-evil',
    manifest: {
      schemaVersion: 2,
      mediaType: OCI,
      config: await blob(store, 'application/vnd.kitops.modelkit.config.v1+json', JSON.stringify({ manifestVersion: '1.0.0', code: [{ path: '../../outside/x.py' }] })),
      layers: [kitCode],
    },
  });
  for (const c of cases) {
    const ref = await publishTo(store, c.name, c.manifest);
    let r = await cli(['--storage-dir', store.root, 'push', '--plain-http', ref]);
    assert.equal(r.code, 0, r.stderr);
    for (const remote of [true, false]) {
      const parent = tmpDir('modctl-parent-');
      const out = path.join(parent, 'a', 'out');
      const args = ['--storage-dir', tmpDir(), 'pull', '--plain-http', ref, '--extract-dir', out];
      r = await cli(remote ? [...args, '--extract-from-remote'] : args);
      assert.equal(r.code, 1, `${c.name}: ${r.stdout}`);
      assert.match(r.stderr, /unsafe path/, c.name);
      assert.deepEqual(listFiles(parent), [], `${c.name}: nothing written`);
    }
  }
});

async function publishTo(store: LocalStore, name: string, manifest: Record<string, unknown>): Promise<string> {
  const bytes = Buffer.from(JSON.stringify(manifest));
  const put = await store.putBytes(bytes);
  const ref = `${reg.host}/hostile/${name}:v1`;
  await store.tag(ref, { mediaType: OCI, digest: put.digest, size: put.size });
  return ref;
}

test('a KitOps layer whose digest differs from its Kitfile entry is refused', async () => {
  const store = await LocalStore.open(tmpDir());
  const t = await tarOf([{ name: 'README.md', content: 'x' }]);
  const docs = await blob(store, 'application/vnd.kitops.modelkit.docs.v1.tar', t);
  const config = await blob(store, 'application/vnd.kitops.modelkit.config.v1+json', JSON.stringify({ manifestVersion: '1.0.0', docs: [{ path: 'README.md', digest: sha('other'), diffId: sha(t) }] }));
  const ref = await publishTo(store, 'kitops-mismatch', { schemaVersion: 2, mediaType: OCI, config, layers: [docs] });
  assert.equal((await cli(['--storage-dir', store.root, 'push', '--plain-http', ref])).code, 0);
  const out = path.join(tmpDir(), 'out');
  const r = await cli(['pull', '--plain-http', ref, '--extract-dir', out, '--extract-from-remote']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /KitOps layer .* is mapped to docs\[0\]/);
  assert.deepEqual(listFiles(out), []);
});

test('an ORAS directory whose uncompressed tar does not match io.deis.oras.content.digest is refused', async () => {
  const store = await LocalStore.open(tmpDir());
  const dir = await tarOf([{ name: 'weights/', dir: true }, { name: 'weights/a.bin', content: 'a' }]);
  const layer = await blob(store, 'application/vnd.oci.image.layer.v1.tar+gzip', gzipSync(dir), {
    'org.opencontainers.image.title': 'weights',
    'io.deis.oras.content.unpack': 'true',
    'io.deis.oras.content.digest': sha('something else'),
  });
  const config = await blob(store, 'application/vnd.oci.empty.v1+json', '{}');
  const ref = await publishTo(store, 'oras-bad-digest', { schemaVersion: 2, mediaType: OCI, config, layers: [layer] });
  assert.equal((await cli(['--storage-dir', store.root, 'push', '--plain-http', ref])).code, 0);
  const out = path.join(tmpDir(), 'out');
  const r = await cli(['pull', '--plain-http', ref, '--extract-dir', out, '--extract-from-remote']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /digest mismatch/i);
  assert.deepEqual(listFiles(out), [], 'nothing committed');
});
