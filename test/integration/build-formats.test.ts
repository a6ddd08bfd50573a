// build fills config fields from the weight headers, warns on contradictions, and writes the three dialects:
// ModelPack (cncf), ModelPack legacy (cnai ids, as modctl v0.2.2 / Harbor 2.13 expect) and Docker model-runner.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { runCli } from '../support/run-cli.js';
import { tmpDir } from '../support/tmp.js';
import { writeGguf, writeSafetensors, qwenKv } from '../unit/weights/fixtures.js';

const ROOT = path.resolve(import.meta.dirname, '../../..');
const addFormats = ((addFormatsModule as any).default ?? addFormatsModule) as (a: any) => void;
const ajv = new Ajv2020({ allErrors: true, strict: true });
addFormats(ajv);
const validate = ajv.compile<any>(JSON.parse(readFileSync(path.join(ROOT, 'spec/modelpack-config-schema.json'), 'utf8')));

const Q4_K_M = 15;

function ggufDir(modelfile: string): string {
  const dir = tmpDir('modctl-gguf-');
  // two shards: one model; 2 × (1000 × 100) + 500 = 200,500 params → "200.5K"… shapes chosen for a round 0.2M
  writeGguf(path.join(dir, 'qwen2-q4_k_m-00001-of-00002.gguf'), { kv: qwenKv(Q4_K_M), tensors: [{ name: 'a', shape: [1000, 100] }] });
  writeGguf(path.join(dir, 'qwen2-q4_k_m-00002-of-00002.gguf'), { kv: qwenKv(Q4_K_M), tensors: [{ name: 'b', shape: [1000, 100] }] });
  writeFileSync(path.join(dir, 'LICENSE'), 'Apache-2.0\n');
  writeFileSync(path.join(dir, 'Modelfile'), modelfile);
  return dir;
}

async function build(dir: string, extra: string[] = []) {
  const store = tmpDir();
  const r = await runCli(['--json', '--storage-dir', store, 'build', '-t', 'example.com/f:v1', '-f', path.join(dir, 'Modelfile'), ...extra, dir], { env: { SOURCE_DATE_EPOCH: '1700000000' } });
  assert.equal(r.code, 0, r.stderr);
  const res = JSON.parse(r.stdout);
  const blob = (d: string) => readFileSync(path.join(store, 'blobs/sha256', d.slice(7)));
  const manifest = JSON.parse(blob(res.digest).toString());
  const config = JSON.parse(blob(manifest.config.digest).toString());
  return { res, manifest, config, stderr: r.stderr };
}

test('build fills empty config fields from GGUF headers (shards are one model)', async () => {
  const dir = ggufDir('NAME qwen\nMODEL *.gguf\nDOC LICENSE\n');
  const { config } = await build(dir);
  assert.equal(config.config.format, 'gguf');
  assert.equal(config.config.quantization, 'Q4_K_M');
  assert.equal(config.config.paramSize, '200K');
  assert.equal(config.config.architecture, 'transformer');
  assert.equal(config.descriptor.family, 'qwen2');
  assert.ok(validate(config), JSON.stringify(validate.errors));
});

test('the Modelfile wins over the headers, with a warning; --no-infer leaves fields empty', async () => {
  const dir = ggufDir('NAME qwen\nQUANTIZATION Q8_0\nMODEL *.gguf\n');
  const { config, stderr } = await build(dir);
  assert.equal(config.config.quantization, 'Q8_0');
  assert.match(stderr, /Modelfile says QUANTIZATION Q8_0, but the weights say Q4_K_M/);
  const none = await build(dir, ['--no-infer']);
  assert.equal(none.config.config.format, undefined);
  assert.equal(none.config.config.paramSize, undefined);
  assert.doesNotMatch(none.stderr, /weights say/);
});

test('safetensors precision comes from the tensor dtypes', async () => {
  const dir = tmpDir('modctl-st-');
  writeSafetensors(path.join(dir, 'model.safetensors'), { tensors: { w: { dtype: 'BF16', shape: [300, 1000] } } });
  writeFileSync(path.join(dir, 'Modelfile'), 'MODEL model.safetensors\n');
  const { config } = await build(dir);
  assert.equal(config.config.precision, 'bfloat16');
  assert.equal(config.config.paramSize, '300K');
  assert.equal(config.config.format, 'safetensors');
});

test('--format modelpack-legacy writes cnai ids everywhere and a config that passes the schema', async () => {
  const dir = ggufDir('NAME qwen\nMODEL *.gguf\nDOC LICENSE\n');
  const { manifest, config } = await build(dir, ['--format', 'modelpack-legacy']);
  assert.equal(manifest.artifactType, 'application/vnd.cnai.model.manifest.v1+json');
  assert.equal(manifest.config.mediaType, 'application/vnd.cnai.model.config.v1+json');
  assert.ok(manifest.layers.every((l: any) => l.mediaType.startsWith('application/vnd.cnai.model.')));
  assert.ok(manifest.layers.every((l: any) => l.annotations['org.cnai.model.filepath'] && !l.annotations['org.cncf.model.filepath']));
  assert.ok(manifest.annotations['org.cnai.modctl.modelfile']);
  assert.ok(validate(config), JSON.stringify(validate.errors));
  assert.ok(config.modelfs.diffIds, 'camelCase keys, as modctl v0.2.2 writes them');
});

test('--format docker: GGUF → config v0.1 with gguf.v3 layers in shard order and a license layer', async () => {
  const dir = ggufDir('NAME qwen\nMODEL *.gguf\nDOC LICENSE\n');
  const { manifest, config } = await build(dir, ['--format', 'docker']);
  assert.equal(manifest.artifactType, undefined);
  assert.equal(manifest.config.mediaType, 'application/vnd.docker.ai.model.config.v0.1+json');
  assert.deepEqual(
    manifest.layers.map((l: any) => [l.mediaType, l.annotations['org.cncf.model.filepath'], l.annotations['org.cncf.model.file.mediatype.untested']]),
    [
      ['application/vnd.docker.ai.gguf.v3', 'qwen2-q4_k_m-00001-of-00002.gguf', 'false'],
      ['application/vnd.docker.ai.gguf.v3', 'qwen2-q4_k_m-00002-of-00002.gguf', 'false'],
      ['application/vnd.docker.ai.license', 'LICENSE', 'false'],
    ],
  );
  assert.equal(config.config.format, 'gguf');
  assert.equal(config.config.quantization, 'Q4_K_M');
  assert.equal(config.config.architecture, 'qwen2');
  assert.equal(config.config.context_size, 32768);
  assert.equal(config.config.gguf['general.architecture'], 'qwen2');
  assert.equal(config.config.gguf['tokenizer.ggml.tokens'], undefined, 'arrays over 50 entries are dropped');
  assert.equal(config.descriptor.created, '2023-11-14T22:13:20Z');
  assert.deepEqual(config.rootfs, { type: 'rootfs', diff_ids: manifest.layers.map((l: any) => l.digest) });
});

test('--format docker: safetensors → config v0.2, one layer per file', async () => {
  const dir = tmpDir('modctl-st-');
  writeSafetensors(path.join(dir, 'model.safetensors'), { tensors: { w: { dtype: 'F16', shape: [10, 10] } } });
  writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ max_position_embeddings: 4096 }));
  writeFileSync(path.join(dir, 'chat_template.jinja'), '{{ messages }}');
  writeFileSync(path.join(dir, 'Modelfile'), 'CONFIG config.json\nCONFIG chat_template.jinja\nMODEL model.safetensors\n');
  const { manifest, config } = await build(dir, ['--format', 'docker']);
  assert.equal(manifest.config.mediaType, 'application/vnd.docker.ai.model.config.v0.2+json');
  assert.deepEqual(manifest.layers.map((l: any) => l.mediaType), [
    'application/vnd.docker.ai.chat.template.jinja',
    'application/vnd.docker.ai.model.file',
    'application/vnd.docker.ai.safetensors',
  ]);
  assert.equal(config.config.format, 'safetensors');
  assert.equal(config.config.context_size, 4096);
});

test('--format docker refuses directory layers with a usage error', async () => {
  const dir = tmpDir('modctl-d-');
  writeFileSync(path.join(dir, 'Modelfile'), 'MODEL sub\n');
  const { mkdirSync } = await import('node:fs');
  mkdirSync(path.join(dir, 'sub'));
  writeFileSync(path.join(dir, 'sub', 'a.bin'), 'a');
  const r = await runCli(['--storage-dir', tmpDir(), 'build', '--format', 'docker', '-t', 'example.com/d:v1', '-f', path.join(dir, 'Modelfile'), dir]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /one raw layer per file; sub is a directory/);
});
