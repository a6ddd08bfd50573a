import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { KEYWORDS, EXTENSION_KEYWORDS, MODCTL_KEYWORDS, parseModelfile, type ModelfileSpec } from '../../../src/modelfile/index.js';

const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
const fixture = (name: string): string => readFileSync(`${ROOT}fixtures/modelfiles/${name}`, 'utf8');

const sp = (line: number, column: number, length: number) => ({ line, column, length });

function base(over: Partial<ModelfileSpec> = {}): ModelfileSpec {
  return { file: 'Modelfile', authors: [], licenses: [], datasetsURL: [], capabilities: {}, files: [], spans: {}, ...over };
}

test('modctl-generated Modelfile parses to the expected spec', () => {
  const spec = parseModelfile(fixture('valid/modctl-generated.Modelfile'), { file: 'models/qwen/Modelfile' });
  assert.deepEqual(spec, {
    file: 'models/qwen/Modelfile',
    name: 'qwen2-0.5b-instruct',
    arch: 'transformer',
    family: 'qwen2',
    format: 'safetensors',
    paramSize: '0.5B',
    precision: 'bfloat16',
    quantization: 'awq',
    authors: [],
    licenses: [],
    datasetsURL: [],
    capabilities: {},
    files: [
      { kind: 'config', pattern: 'config.json', span: sp(26, 8, 11) },
      { kind: 'config', pattern: 'generation_config.json', span: sp(27, 8, 22) },
      { kind: 'config', pattern: 'my configs/tokenizer config.json', span: sp(28, 8, 34) },
      { kind: 'config', pattern: 'tokenizer.json', span: sp(29, 8, 14) },
      { kind: 'code', pattern: 'scripts/run.sh', span: sp(33, 6, 14) },
      { kind: 'model', pattern: 'model weights/model-00001-of-00002.safetensors', span: sp(37, 7, 48) },
      { kind: 'model', pattern: 'model-00002-of-00002.safetensors', span: sp(38, 7, 32) },
      { kind: 'doc', pattern: 'LICENSE', span: sp(42, 5, 7) },
      { kind: 'doc', pattern: 'README.md', span: sp(43, 5, 9) },
    ],
    spans: {
      name: sp(4, 6, 19),
      arch: sp(7, 6, 11),
      family: sp(10, 8, 5),
      format: sp(13, 8, 11),
      paramsize: sp(16, 11, 4),
      precision: sp(19, 11, 8),
      quantization: sp(22, 14, 3),
    },
  });
});

test('every extension keyword, mixed-case keywords, duplicates collapsed', () => {
  const spec = parseModelfile(fixture('valid/extensions.Modelfile'));
  const { spans, files, ...rest } = spec;
  assert.deepEqual(rest, {
    file: 'Modelfile',
    name: 'demo',
    authors: ['Ada Lovelace', 'Charles Babbage'],
    version: 'v1.2.0',
    revision: '0123abc',
    vendor: 'Example Corp',
    title: 'Demo Model',
    description: 'A demo model with "quotes"',
    licenses: ['Apache-2.0 OR MIT', 'CC-BY-4.0'],
    docURL: 'https://example.com/docs',
    sourceURL: 'https://github.com/example/demo',
    datasetsURL: ['https://example.com/ds1', 'https://example.com/ds2'],
    capabilities: {
      inputTypes: ['text', 'image'],
      outputTypes: ['text'],
      knowledgeCutoff: '2024-06-01T00:00:00Z',
      reasoning: true,
      toolUsage: false,
      reward: false,
      languages: ['en', 'zh'],
    },
  });
  assert.deepEqual(files, [{ kind: 'model', pattern: '*.gguf', span: sp(26, 7, 6) }]);
  assert.deepEqual(Object.keys(spans).sort(), [
    'description', 'docurl', 'knowledgecutoff', 'name', 'reasoning', 'revision', 'reward', 'sourceurl', 'title', 'toolusage', 'vendor', 'version',
  ]);
  assert.deepEqual(spans.version, sp(6, 9, 6));
  assert.deepEqual(spans.description, sp(10, 13, 30));
});

test('lower-case keywords, arguments keep their case', () => {
  const spec = parseModelfile('name MyModel\nmodel Weights.BIN\nCoDe Run.PY\n');
  assert.equal(spec.name, 'MyModel');
  assert.deepEqual(
    spec.files.map((f) => [f.kind, f.pattern]),
    [['model', 'Weights.BIN'], ['code', 'Run.PY']],
  );
});

test('quoted and escaped arguments', () => {
  const cases: [string, string][] = [
    ['MODEL "a b.bin"', 'a b.bin'],
    ['MODEL a\\ b.bin', 'a b.bin'],
    ['MODEL "say \\"hi\\".bin"', 'say "hi".bin'],
    ['MODEL C:\\\\models\\\\x.bin', 'C:\\models\\x.bin'],
    ['MODEL "tab\\ sep"', 'tab sep'],
    ['MODEL pre"mid dle"post', 'premid dlepost'],
    ['MODEL it\'s.bin', "it's.bin"],
    ['MODEL \t  spaced.bin', 'spaced.bin'],
    ['MODEL "#not-a-comment"', '#not-a-comment'],
    ['MODEL #hash.bin', '#hash.bin'],
    ['MODEL ünïcödé/模型.bin', 'ünïcödé/模型.bin'],
  ];
  for (const [line, expected] of cases) {
    const spec = parseModelfile(line + '\n');
    assert.deepEqual(spec.files.map((f) => f.pattern), [expected], line);
  }
});

test('comments, indentation, blank lines, CRLF and BOM', () => {
  const text = '\uFEFF# header\r\n\r\n   # indented comment\r\n\t  NAME   demo  \r\n  \t\r\nMODEL  m.bin\r\n#MODEL not-me.bin';
  const spec = parseModelfile(text);
  assert.equal(spec.name, 'demo');
  assert.deepEqual(spec.spans.name, sp(4, 11, 4));
  assert.deepEqual(spec.files, [{ kind: 'model', pattern: 'm.bin', span: sp(6, 8, 5) }]);
});

test('a trailing lone backslash is dropped (no line continuation)', () => {
  const spec = parseModelfile('MODEL a.bin\\\nMODEL b.bin \\\nCODE c.py');
  assert.deepEqual(
    spec.files.map((f) => f.pattern),
    ['a.bin', 'b.bin', 'c.py'],
  );
  // An escaped backslash at the end is kept.
  assert.deepEqual(parseModelfile('MODEL dir\\\\\n').files.map((f) => f.pattern), ['dir\\']);
});

test('identical (kind, pattern) pairs collapse to the first; other kinds are kept', () => {
  const spec = parseModelfile('MODEL a.bin\nMODEL b.bin\nMODEL a.bin\nDOC a.bin\nMODEL "a.bin"\n');
  assert.deepEqual(spec.files, [
    { kind: 'model', pattern: 'a.bin', span: sp(1, 7, 5) },
    { kind: 'model', pattern: 'b.bin', span: sp(2, 7, 5) },
    { kind: 'doc', pattern: 'a.bin', span: sp(4, 5, 5) },
  ]);
});

test('DATASET is accepted; PARAMSIZE is free text', () => {
  const spec = parseModelfile('DATASET data/*.parquet\nPARAMSIZE about-seven-billion\n');
  assert.deepEqual(spec.files.map((f) => [f.kind, f.pattern]), [['dataset', 'data/*.parquet']]);
  assert.equal(spec.paramSize, 'about-seven-billion');
});

test('empty and comment-only files give an empty spec', () => {
  assert.deepEqual(parseModelfile(''), base());
  assert.deepEqual(parseModelfile('# nothing\n\n   \n'), base());
  assert.deepEqual(parseModelfile('', { file: 'x/Modelfile' }).file, 'x/Modelfile');
});

test('knowledge cutoff: RFC 3339 forms kept, plain dates normalised', () => {
  const cases: [string, string][] = [
    ['2024-06-01', '2024-06-01T00:00:00Z'],
    ['2024-02-29', '2024-02-29T00:00:00Z'],
    ['2024-06-01T12:30:00Z', '2024-06-01T12:30:00Z'],
    ['2024-06-01T12:30:00.123456789+08:00', '2024-06-01T12:30:00.123456789+08:00'],
    ['2024-06-01T12:30:00-05:30', '2024-06-01T12:30:00-05:30'],
  ];
  for (const [input, expected] of cases) {
    assert.equal(parseModelfile(`KNOWLEDGECUTOFF ${input}`).capabilities.knowledgeCutoff, expected, input);
  }
});

test('booleans accept true/false/yes/no in any case', () => {
  for (const [v, b] of [['true', true], ['TRUE', true], ['Yes', true], ['false', false], ['No', false], ['nO', false]] as const) {
    assert.equal(parseModelfile(`REASONING ${v}`).capabilities.reasoning, b, v);
  }
});

test('keyword tables', () => {
  assert.deepEqual(MODCTL_KEYWORDS, ['CONFIG', 'MODEL', 'CODE', 'DOC', 'DATASET', 'NAME', 'ARCH', 'FAMILY', 'FORMAT', 'PARAMSIZE', 'PRECISION', 'QUANTIZATION']);
  assert.equal(KEYWORDS.length, 12 + EXTENSION_KEYWORDS.length);
  assert.equal(new Set(KEYWORDS).size, KEYWORDS.length);
  for (const k of KEYWORDS) assert.equal(k, k.toUpperCase());
  assert.deepEqual(
    EXTENSION_KEYWORDS.map((e) => e.keyword),
    ['AUTHOR', 'VERSION', 'REVISION', 'VENDOR', 'TITLE', 'DESCRIPTION', 'LICENSE', 'DOCURL', 'SOURCEURL', 'DATASETURL', 'INPUTTYPE', 'OUTPUTTYPE', 'KNOWLEDGECUTOFF', 'REASONING', 'TOOLUSAGE', 'REWARD', 'LANGUAGE'],
  );
  for (const e of EXTENSION_KEYWORDS) {
    assert.ok(e.description.length > 10 && !e.description.includes('\n'), e.keyword);
  }
  // Every keyword, in any case, parses.
  for (const k of KEYWORDS) {
    const value = k === 'INPUTTYPE' || k === 'OUTPUTTYPE' ? 'text' : k === 'LANGUAGE' ? 'en' : k === 'KNOWLEDGECUTOFF' ? '2024-01-01' : ['REASONING', 'TOOLUSAGE', 'REWARD'].includes(k) ? 'yes' : 'v';
    assert.doesNotThrow(() => parseModelfile(`${k.toLowerCase()} ${value}`), k);
  }
});
