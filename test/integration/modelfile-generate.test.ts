import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { runCli } from '../support/run-cli.js';
import { tmpDir, writeTree } from '../support/tmp.js';

function safetensors(shape: number[], dtype = 'BF16'): Buffer {
  const n = shape.reduce((a, b) => a * b, 1) * 2;
  let hdr = Buffer.from(JSON.stringify({ 'w': { dtype, shape, data_offsets: [0, n] } }));
  hdr = Buffer.concat([hdr, Buffer.alloc((8 - (hdr.length % 8)) % 8, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(hdr.length));
  return Buffer.concat([len, hdr, Buffer.alloc(n)]);
}

test('modelfile generate writes a Modelfile that build accepts unchanged (Hugging Face layout)', async () => {
  const dir = tmpDir('modctl-hf-');
  writeTree(dir, {
    'config.json': JSON.stringify({ model_type: 'qwen2', torch_dtype: 'bfloat16', transformers_version: '4.44.0' }),
    'generation_config.json': '{}',
    'tokenizer.json': '{}',
    'model-00001-of-00002.safetensors': safetensors([10, 10]),
    'model-00002-of-00002.safetensors': safetensors([5, 10]),
    'model.safetensors.index.json': '{}',
    'README.md': '# m\n',
    'LICENSE': 'MIT\n',
    '.gitattributes': '*.safetensors filter=lfs\n',
    '__pycache__/x.pyc': 'x',
  });
  let r = await runCli(['modelfile', 'generate', dir, '-O', dir]);
  assert.equal(r.code, 0, r.stderr);
  const text = readFileSync(path.join(dir, 'Modelfile'), 'utf8');
  assert.match(text, /^NAME /m);
  assert.match(text, /^FAMILY qwen2$/m);
  assert.match(text, /^PRECISION bfloat16$/m);
  assert.match(text, /^FORMAT safetensors$/m);
  assert.match(text, /^PARAMSIZE 150$/m);
  assert.match(text, /^MODEL model-00001-of-00002\.safetensors$/m);
  assert.doesNotMatch(text, /gitattributes|pycache|Generated at/);

  r = await runCli(['modelfile', 'generate', dir, '-O', dir]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /already exists.*\n.*--overwrite/);

  const store = tmpDir();
  r = await runCli(['--json', '--storage-dir', store, 'build', '-t', 'example.com/hf:v1', '-f', path.join(dir, 'Modelfile'), dir]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).layers.length, 8);

  r = await runCli(['modelfile', 'generate', dir, '-O', '-', '--name', 'override', '--exclude', '*.md']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^NAME override$/m);
  assert.doesNotMatch(r.stdout, /README\.md/);
});

test('modelfile generate: clear errors for a missing or empty directory', async () => {
  let r = await runCli(['modelfile', 'generate', '/nonexistent/dir', '-O', '-']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /does not exist/);
  const empty = tmpDir();
  r = await runCli(['modelfile', 'generate', empty, '-O', '-']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /empty|no model/i);
  writeFileSync(path.join(empty, 'notes.md'), 'x');
  r = await runCli(['modelfile', 'generate', empty, '-O', empty]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /no model\/code\/dataset found/);
  assert.ok(!existsSync(path.join(empty, 'Modelfile')));
});
