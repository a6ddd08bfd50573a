import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CLASSIFY_ORDER,
  CODE_PATTERNS,
  CONFIG_PATTERNS,
  DOC_PATTERNS,
  MODEL_PATTERNS,
  WEIGHT_SIZE_THRESHOLD,
  classifyFile,
  compileGoPattern,
  goMatch,
  isSkippedName,
  matchKind,
  type GeneratedKind,
} from '../../../src/modelfile/classify.js';

test('the lists have modctl’s sizes (constants.go after #460/#499/#529)', () => {
  assert.equal(CONFIG_PATTERNS.length, 36);
  assert.equal(MODEL_PATTERNS.length, 69);
  assert.equal(CODE_PATTERNS.length, 140);
  assert.equal(DOC_PATTERNS.length, 104);
  assert.deepEqual(CLASSIFY_ORDER.map(([k]) => k), ['config', 'model', 'code', 'doc']);
});

/** A name the pattern matches: `*`/`?` → x, a class → its first character. */
function sampleFor(pattern: string): string {
  return pattern.toLowerCase().replace(/\[\^?([^\]])[^\]]*\]/g, '$1').replace(/\*/g, 'x').replace(/\?/g, 'x');
}

/**
 * Patterns whose own sample lands in an earlier list (first match wins). Duplicated in modctl too: `*.meta` is
 * CONFIG and MODEL, `*.xml` CONFIG and DOC; project files with config extensions listed under CODE are CONFIG.
 */
const SHADOWED: Record<string, GeneratedKind> = {
  '*.meta': 'config',
  '*.xml': 'config',
  'package.json': 'config',
  'package-lock.json': 'config',
  'composer.json': 'config',
  'pnpm-lock.yaml': 'config',
  'pyproject.toml': 'config',
  'Cargo.toml': 'config',
  'setup.cfg': 'config',
  'tox.ini': 'config',
  'rebar.config': 'config',
};

test('every pattern classifies its own sample into its list, or into the earlier list that shadows it', () => {
  const unexpected: string[] = [];
  for (const [kind, patterns] of CLASSIFY_ORDER) {
    for (const p of patterns) {
      const name = sampleFor(p);
      assert.ok(goMatch(p.toLowerCase(), name), `sample ${name} must match its pattern ${p}`);
      const expected = SHADOWED[p] ?? kind;
      const got = classifyFile(name, 0);
      if (got !== expected) unexpected.push(`${kind} ${p}: sample ${name} → ${got}, expected ${expected}`);
    }
  }
  assert.deepEqual(unexpected, []);
  for (const p of Object.keys(SHADOWED)) {
    assert.ok(CLASSIFY_ORDER.some(([, list]) => list.includes(p)), `${p} is in a list`);
  }
});

test('representative files', () => {
  const table: Array<[string, GeneratedKind]> = [
    // CONFIG
    ['config.json', 'config'],
    ['generation_config.json', 'config'],
    ['tokenizer.json', 'config'],
    ['tokenizer_config.json', 'config'],
    ['special_tokens_map.json', 'config'],
    ['model.safetensors.index.json', 'config'],
    ['tokenizer.model', 'config'],
    ['tokenizer.model.v3', 'config'],
    ['vocab.txt', 'config'],
    ['merges.txt', 'config'],
    ['added_tokens.txt', 'config'],
    ['spiece.model', 'config'],
    ['sentencepiece.bpe.model', 'config'],
    ['sentencepiece.bpe.vocab', 'config'],
    ['qwen.tiktoken', 'config'],
    ['chat_template.jinja', 'config'],
    ['config.json.bak', 'config'],
    ['params.yaml', 'config'],
    ['hparams.hparams', 'config'],
    ['package.json', 'config'],
    ['pyproject.toml', 'config'],
    ['graph.meta', 'config'],
    ['layout.xml', 'config'],
    // MODEL
    ['model.safetensors', 'model'],
    ['model-00001-of-00002.safetensors', 'model'],
    ['pytorch_model.bin', 'model'],
    ['pytorch_model.bin.index', 'model'],
    ['qwen2-q4_k_m-00001-of-00002.gguf', 'model'],
    ['model.gguf.part1of2', 'model'],
    ['model.onnx', 'model'],
    ['model.onnx_data', 'model'],
    ['variables.data-00000-of-00001', 'model'],
    ['variables.index', 'model'],
    ['tensor0_0', 'model'],
    ['tensor12_3.bin', 'model'],
    ['model.llamafile.1', 'model'],
    ['train.parquet', 'model'],
    ['spm.model', 'model'],
    ['weights.npz', 'model'],
    // CODE
    ['modeling_qwen.py', 'code'],
    ['run.sh', 'code'],
    ['notebook.ipynb', 'code'],
    ['kernel.cu', 'code'],
    ['Makefile', 'code'],
    ['Dockerfile.gpu', 'code'],
    ['CMakeLists.txt', 'code'],
    ['requirements.txt', 'code'],
    ['requirements-dev.txt', 'code'],
    ['go.mod', 'code'],
    ['yarn.lock', 'code'],
    ['libfoo.so', 'code'],
    ['script.R', 'code'],
    ['.env.local', 'code'],
    // DOC
    ['README.md', 'doc'],
    ['README', 'doc'],
    ['LICENSE', 'doc'],
    ['LICENSE.txt', 'doc'],
    ['license-apache', 'doc'],
    ['USE_POLICY.md', 'doc'],
    ['notes.txt', 'doc'],
    ['dev-requirements.in', 'doc'],
    ['paper.pdf', 'doc'],
    ['events.out.tfevents.1700000000.host', 'doc'],
    ['figure.PNG', 'doc'],
    ['demo.mp4', 'doc'],
    ['index.html', 'doc'],
  ];
  for (const [name, kind] of table) assert.equal(classifyFile(name, 0), kind, name);
});

test('matching uses the lower-cased base name only', () => {
  assert.equal(classifyFile('Sub Dir/Model.SafeTensors', 0), 'model');
  assert.equal(classifyFile('docs/README.MD', 0), 'doc');
  assert.equal(classifyFile('json.dir/weights', 0), 'code', 'directory names do not count');
  assert.equal(classifyFile('a\\b\\config.JSON', 0), 'config');
  assert.deepEqual(matchKind('MAKEFILE.am'), { kind: 'code', pattern: 'Makefile*' });
  assert.equal(matchKind('weights.unknownext'), undefined);
});

test('unrecognised files: MODEL above 128 MB (SI), CODE otherwise', () => {
  assert.equal(WEIGHT_SIZE_THRESHOLD, 128_000_000);
  assert.equal(classifyFile('blob.dat', WEIGHT_SIZE_THRESHOLD + 1), 'model');
  assert.equal(classifyFile('blob.dat', WEIGHT_SIZE_THRESHOLD), 'code');
  assert.equal(classifyFile('noext', 0), 'code');
  assert.equal(classifyFile('README.md', 10e9), 'doc', 'size never overrides a pattern');
});

test('skip patterns: hidden entries, the Modelfile, Python caches', () => {
  for (const name of ['.git', '.gitattributes', '.cache', 'Modelfile', 'MODELFILE', 'modelfile', '__pycache__', 'x.pyc', 'X.PYO', 'ext.pyd']) {
    assert.equal(isSkippedName(name), true, name);
  }
  for (const name of ['.', '..', 'Modelfile.bak', 'model.py', 'pycache', 'config.json']) assert.equal(isSkippedName(name), false, name);
});

test('Go path.Match semantics', () => {
  const table: Array<[string, string, boolean]> = [
    ['*.json', 'a.json', true],
    ['*.json', '.json', true],
    ['*.json', 'a/b.json', false],
    ['*', '', true],
    ['?.py', 'a.py', true],
    ['?.py', 'ab.py', false],
    ['tensor[0-9]*_[0-9]*', 'tensor3_4', true],
    ['tensor[0-9]*_[0-9]*', 'tensorx_4', false],
    ['[^a]b', 'cb', true],
    ['[^a]b', 'ab', false],
    ['[a-c-]x', 'ax', false],
    ['a\\*b', 'a*b', true],
    ['a\\*b', 'axb', false],
    ['*.c++', 'x.c++', true],
    ['*.c++', 'x.cc', false],
    ['x.(y)', 'x.(y)', true],
    ['[]]', ']', false],
    ['[', '[', false],
    ['a\\', 'a', false],
  ];
  for (const [p, name, want] of table) assert.equal(goMatch(p, name), want, `${p} ~ ${name}`);
  assert.equal(compileGoPattern('[z-a]'), null);
  assert.equal(compileGoPattern('[-a]'), null);
});
