import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { generateModelfile, rfc3339Local, NO_MODEL_MESSAGE, type GenerateOptions } from '../../../src/modelfile/generate.js';
import { CODE_PATTERNS, CONFIG_PATTERNS, DOC_PATTERNS, MODEL_PATTERNS } from '../../../src/modelfile/classify.js';
import { parseModelfile } from '../../../src/modelfile/index.js';
import { resolveSources } from '../../../src/build/sources.js';
import { ModctlError } from '../../../src/errors.js';
import { tmpDir, writeTree } from '../../support/tmp.js';
import { qwenKv, str, writeGguf, writeSafetensors } from '../weights/fixtures.js';

const root = tmpDir('modctl-gen-');

const SUPPORTED = {
  config: `# Supported file types: ${CONFIG_PATTERNS.join(', ')}`,
  code: `# Supported file types: ${CODE_PATTERNS.join(', ')}`,
  model: `# Supported file types: ${MODEL_PATTERNS.join(', ')}`,
  doc: `# Supported file types: ${DOC_PATTERNS.join(', ')}`,
};

function groups(files: { config?: string[]; code?: string[]; model?: string[]; doc?: string[] }): string {
  const g = (label: string, kw: string, sup: string, list: string[] = []) =>
    [`# ${label} files (Generated from the files in the model directory)`, sup, ...list.map((f) => `${kw} ${f}`)].join('\n');
  return [
    g('Config', 'CONFIG', SUPPORTED.config, files.config),
    g('Code', 'CODE', SUPPORTED.code, files.code),
    g('Model', 'MODEL', SUPPORTED.model, files.model),
    g('Doc', 'DOC', SUPPORTED.doc, files.doc),
  ].join('\n\n');
}

function mkdir(name: string): string {
  const d = path.join(root, name);
  mkdirSync(d, { recursive: true });
  return d;
}

/** The generated text parses to the returned spec, and a build resolves exactly the generated files. */
async function assertBuildable(dir: string, res: Awaited<ReturnType<typeof generateModelfile>>): Promise<void> {
  assert.deepEqual(parseModelfile(res.text), res.spec);
  const { entries } = await resolveSources(dir, res.spec.files);
  const got = entries.map((e) => `${e.kind} ${e.relPath}`).sort();
  const want = res.files.map((f) => `${f.kind} ${f.path}`).sort();
  assert.deepEqual(got, want);
}

function hfRepo(dir: string): void {
  writeTree(dir, {
    'config.json': JSON.stringify({ architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', torch_dtype: 'bfloat16', transformers_version: '4.43.1', max_position_embeddings: 32768 }),
    'generation_config.json': JSON.stringify({ bos_token_id: 151643, do_sample: true, transformers_version: '4.43.1' }),
    'tokenizer.json': '{}',
    'tokenizer_config.json': '{}',
    'special_tokens_map.json': '{}',
    'model.safetensors.index.json': '{"weight_map":{}}',
    'README.md': '# Qwen2\n',
    LICENSE: 'Apache-2.0\n',
    '.gitattributes': '*.safetensors filter=lfs\n',
    '__pycache__/x.pyc': 'bytecode',
  });
  writeSafetensors(path.join(dir, 'model-00001-of-00002.safetensors'), {
    metadata: { format: 'pt' },
    tensors: { 'model.embed_tokens.weight': { dtype: 'BF16', shape: [100, 64] } },
  });
  writeSafetensors(path.join(dir, 'model-00002-of-00002.safetensors'), {
    metadata: { format: 'pt' },
    tensors: { 'lm_head.weight': { dtype: 'BF16', shape: [100, 64] }, 'model.norm.weight': { dtype: 'BF16', shape: [64] } },
  });
}

test('a Hugging Face safetensors repository gives the exact expected Modelfile', async () => {
  const dir = mkdir('qwen2-0.5b-instruct');
  hfRepo(dir);
  const res = await generateModelfile(dir);
  const expected =
    [
      '# Model name\nNAME qwen2-0.5b-instruct',
      '# Model architecture (Generated from "transformers_version" in generation_config.json)\nARCH transformer',
      '# Model family (Generated from "model_type" in config.json)\nFAMILY qwen2',
      '# Model format (Generated from the weight files)\nFORMAT safetensors',
      '# Model paramsize (Generated from the tensor shapes in the weight files)\nPARAMSIZE 12.9K',
      '# Model precision (Generated from "torch_dtype" in config.json)\nPRECISION bfloat16',
      groups({
        config: ['config.json', 'generation_config.json', 'model.safetensors.index.json', 'special_tokens_map.json', 'tokenizer.json', 'tokenizer_config.json'],
        model: ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'],
        doc: ['LICENSE', 'README.md'],
      }),
    ].join('\n\n') + '\n';
  assert.equal(res.text, expected);
  assert.ok(res.text.includes('\n# Supported file types: *.json, *.jsonl, *.json5, *.jsonc, *.yaml,'));
  assert.ok(!res.text.includes('Generated at'));
  assert.deepEqual(res.warnings, []);
  assert.equal(res.spec.name, 'qwen2-0.5b-instruct');
  assert.equal(res.spec.arch, 'transformer');
  assert.equal(res.spec.paramSize, '12.9K');
  assert.deepEqual(
    res.files.map((f) => [f.kind, f.path]),
    [
      ['config', 'config.json'],
      ['config', 'generation_config.json'],
      ['config', 'model.safetensors.index.json'],
      ['config', 'special_tokens_map.json'],
      ['config', 'tokenizer.json'],
      ['config', 'tokenizer_config.json'],
      ['model', 'model-00001-of-00002.safetensors'],
      ['model', 'model-00002-of-00002.safetensors'],
      ['doc', 'LICENSE'],
      ['doc', 'README.md'],
    ],
  );
  assert.equal(res.weights?.precision, 'bfloat16');
  await assertBuildable(dir, res);

  // Deterministic: same bytes on a second run.
  assert.equal((await generateModelfile(dir)).text, res.text);
});

test('timestamp line on request, like modctl', async () => {
  const dir = mkdir('ts-model');
  hfRepo(dir);
  const now = new Date('2025-07-21T02:04:05Z');
  const res = await generateModelfile(dir, { timestamp: true, now, infer: false });
  assert.ok(res.text.startsWith(`# Generated at ${rfc3339Local(now)}\n\n# Model name\nNAME ts-model\n`));
  assert.match(rfc3339Local(now), /^2025-07-2\dT\d\d:04:05(Z|[+-]\d\d:\d\d)$/);
  assert.ok(!res.text.includes('PARAMSIZE'), 'infer: false leaves weight-derived fields out');
  assert.ok(res.text.includes('PRECISION bfloat16'), 'config.json is still read');
});

test('sharded GGUF: FORMAT gguf, QUANTIZATION Q4_K_M, PARAMSIZE summed, ARCH from general.architecture', async () => {
  const dir = mkdir('qwen2-gguf');
  writeGguf(path.join(dir, 'qwen2-q4_k_m-00001-of-00002.gguf'), { kv: qwenKv(15), tensors: [{ name: 'token_embd.weight', shape: [896, 151936], type: 12 }] });
  writeGguf(path.join(dir, 'qwen2-q4_k_m-00002-of-00002.gguf'), {
    kv: [['general.architecture', str('qwen2')]],
    tensors: [{ name: 'blk.0.attn_q.weight', shape: [896, 399_000], type: 12 }],
  });
  writeTree(dir, { 'README.md': 'hi' });
  const res = await generateModelfile(dir);
  const expected =
    [
      '# Model name\nNAME qwen2-gguf',
      '# Model architecture (Generated from "general.architecture" in qwen2-q4_k_m-00001-of-00002.gguf)\nARCH qwen2',
      '# Model format (Generated from the weight files)\nFORMAT gguf',
      '# Model paramsize (Generated from the tensor shapes in the weight files)\nPARAMSIZE 493.6M',
      '# Model quantization (Generated from "general.file_type" in qwen2-q4_k_m-00001-of-00002.gguf)\nQUANTIZATION Q4_K_M',
      groups({ model: ['qwen2-q4_k_m-00001-of-00002.gguf', 'qwen2-q4_k_m-00002-of-00002.gguf'], doc: ['README.md'] }),
    ].join('\n\n') + '\n';
  assert.equal(res.text, expected);
  assert.equal(res.spec.quantization, 'Q4_K_M');
  assert.equal(res.weights?.paramCount, 896 * 151936 + 896 * 399_000);
  await assertBuildable(dir, res);
});

test('flags override everything; values and paths are quoted and glob characters escaped', async () => {
  const dir = mkdir('flags');
  hfRepo(dir);
  writeTree(dir, { 'weights [v1].bin': 'x', 'src dir/a{b}.py': 'print(1)', 'odd"name.md': 'x' });
  const opts: GenerateOptions = { name: 'my model', arch: 'llm', family: 'fam', format: 'fmt', paramSize: '0.5B', precision: 'fp8', quantization: 'awq' };
  const res = await generateModelfile(dir, opts);
  const head = res.text.split('\n# Config files')[0];
  assert.equal(
    head,
    [
      '# Model name\nNAME "my model"',
      '# Model architecture\nARCH llm',
      '# Model family\nFAMILY fam',
      '# Model format\nFORMAT fmt',
      '# Model paramsize\nPARAMSIZE 0.5B',
      '# Model precision\nPRECISION fp8',
      '# Model quantization\nQUANTIZATION awq',
    ].join('\n\n') + '\n',
  );
  assert.ok(res.text.includes('\nMODEL "weights \\\\[v1\\\\].bin"\n'), res.text);
  assert.ok(res.text.includes('\nCODE "src dir/a\\\\{b\\\\}.py"\n'));
  assert.ok(res.text.includes('\nDOC "odd\\"name.md"\n'));
  assert.equal(res.spec.name, 'my model');
  assert.equal(res.spec.quantization, 'awq');
  await assertBuildable(dir, res);
});

test('exclude drops subtrees, include rescues skipped entries, exclude wins', async () => {
  const dir = mkdir('filters');
  writeTree(dir, {
    'model.bin': 'w',
    'README.md': 'r',
    'sub/keep.py': 'k',
    'sub/skip/a.py': 'a',
    'sub/skip/deeper/b.py': 'b',
    '.hidden.json': '{}',
    '.weights/extra.bin': 'e',
    '.weights/.inner.json': '{}',
    '__pycache__/c.pyc': 'c',
    'Modelfile': 'MODEL model.bin',
  });
  const paths = async (opts: GenerateOptions) => (await generateModelfile(dir, opts)).files.map((f) => `${f.kind}:${f.path}`);
  assert.deepEqual(await paths({}), ['model:model.bin', 'code:sub/keep.py', 'code:sub/skip/a.py', 'code:sub/skip/deeper/b.py', 'doc:README.md']);
  assert.deepEqual(await paths({ exclude: ['sub/skip', '**/*.md'] }), ['model:model.bin', 'code:sub/keep.py']);
  assert.deepEqual(await paths({ exclude: ['./sub/skip/'] }), ['model:model.bin', 'code:sub/keep.py', 'doc:README.md']);
  assert.deepEqual(await paths({ include: ['.weights/**'] }), [
    'config:.weights/.inner.json',
    'model:.weights/extra.bin',
    'model:model.bin',
    'code:sub/keep.py',
    'code:sub/skip/a.py',
    'code:sub/skip/deeper/b.py',
    'doc:README.md',
  ]);
  assert.deepEqual(await paths({ include: ['**/.*'], exclude: ['sub'] }), ['config:.hidden.json', 'config:.weights/.inner.json', 'model:model.bin', 'doc:README.md']);
  assert.deepEqual(await paths({ include: ['**/*.pyc'], exclude: ['sub/**'] }), ['model:model.bin', 'code:__pycache__/c.pyc', 'doc:README.md']);
  assert.deepEqual(await paths({ include: ['.weights/**'], exclude: ['.weights'] }), ['model:model.bin', 'code:sub/keep.py', 'code:sub/skip/a.py', 'code:sub/skip/deeper/b.py', 'doc:README.md']);
  const res = await generateModelfile(dir, { include: ['.weights/**', '**/.*'] });
  await assertBuildable(dir, res);
});

test('limits: file size, file count, total size', async () => {
  const dir = mkdir('limits');
  writeTree(dir, { 'a.bin': '0123456789', 'b.bin': '0123456789', 'c.py': 'x' });
  const code = async (limits: GenerateOptions['limits']) => {
    try {
      await generateModelfile(dir, { limits });
    } catch (e) {
      assert.ok(e instanceof ModctlError);
      return `${e.code}: ${e.message}`;
    }
    return 'ok';
  };
  assert.equal(await code({ maxFileSize: 9 }), 'E_WORKSPACE_LIMIT: file a.bin is 10 bytes, over the 9-byte limit for one file');
  assert.equal(await code({ maxFiles: 2 }), 'E_WORKSPACE_LIMIT: the directory holds more than 2 files');
  assert.equal(await code({ maxTotalSize: 15 }), 'E_WORKSPACE_LIMIT: the files add up to more than 15 bytes');
  assert.equal(await code({ maxFileSize: 10, maxFiles: 3, maxTotalSize: 21 }), 'ok');
  const excluded = await generateModelfile(dir, { limits: { maxFiles: 2 }, exclude: ['c.py'] });
  assert.equal(excluded.files.length, 2, 'excluded files do not count');
});

test('workspace errors: missing, not a directory, symlink, empty, unreadable, nothing to pack', async () => {
  const expectError = async (dir: string, code: string, message?: string | RegExp) => {
    await assert.rejects(generateModelfile(dir), (e: unknown) => {
      assert.ok(e instanceof ModctlError, String(e));
      assert.equal(e.code, code, e.message);
      if (typeof message === 'string') assert.equal(e.message, message);
      else if (message) assert.match(e.message, message);
      return true;
    });
  };
  await expectError(path.join(root, 'does-not-exist'), 'E_NOT_FOUND', /does not exist/);
  const file = path.join(root, 'plain-file');
  writeFileSync(file, 'x');
  await expectError(file, 'E_WORKSPACE_INVALID', /is not a directory/);
  const real = mkdir('real-dir');
  writeTree(real, { 'model.bin': 'x' });
  const link = path.join(root, 'link-dir');
  symlinkSync(real, link);
  await expectError(link, 'E_WORKSPACE_INVALID', /is a symlink/);
  await expectError(mkdir('empty'), 'E_WORKSPACE_EMPTY', /is empty/);
  const docsOnly = mkdir('docs-only');
  writeTree(docsOnly, { 'README.md': 'x', 'config.json': '{}', '.git/HEAD': 'ref' });
  await expectError(docsOnly, 'E_NO_MODEL_FILES', NO_MODEL_MESSAGE);
  assert.equal(NO_MODEL_MESSAGE, 'no model/code/dataset found - you have to create the Modelfile by yourself');
});

test('symlinks: files followed (warning when outside), directories and dangling links left out', async () => {
  const outside = mkdir('outside');
  writeTree(outside, { 'blob.bin': '0123', 'dir/x.py': 'x' });
  const dir = mkdir('links');
  writeTree(dir, { 'inner.safetensors.real': 'abc', 'run.py': 'x' });
  symlinkSync(path.join(outside, 'blob.bin'), path.join(dir, 'model.bin'));
  symlinkSync(path.join(dir, 'inner.safetensors.real'), path.join(dir, 'inner.gguf'));
  symlinkSync(path.join(outside, 'dir'), path.join(dir, 'linked-dir'));
  symlinkSync(path.join(outside, 'nope'), path.join(dir, 'dangling.bin'));
  const res = await generateModelfile(dir, { infer: false });
  assert.deepEqual(res.files.map((f) => [f.kind, f.path, f.size]), [
    ['model', 'inner.gguf', 3],
    ['model', 'model.bin', 4],
    ['code', 'inner.safetensors.real', 3],
    ['code', 'run.py', 1],
  ]);
  const w = res.warnings.join('\n');
  assert.match(w, /dangling\.bin is a dangling symlink; left out/);
  assert.match(w, /linked-dir is a symlink to a directory; not followed/);
  assert.match(w, /model\.bin is a symlink to .*outside the directory/);
});

test('a broken config.json or weight header is a warning, not a failure', async () => {
  const dir = mkdir('broken');
  writeTree(dir, { 'config.json': '{not json', 'model.safetensors': 'version https://git-lfs.github.com/spec/v1\n' });
  const res = await generateModelfile(dir);
  assert.match(res.warnings.join('\n'), /cannot read config\.json for metadata/);
  assert.match(res.warnings.join('\n'), /cannot read safetensors header of model\.safetensors/);
  assert.ok(res.text.includes('FORMAT safetensors'));
  assert.ok(!res.text.includes('PARAMSIZE'));
});
