import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { FILE_KEYWORDS, parseModelfile, quoteValue, renderModelfile, type ModelfileSpec } from '../../../src/modelfile/index.js';

const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
const fixture = (name: string): string => readFileSync(`${ROOT}fixtures/modelfiles/${name}`, 'utf8');

const KIND_ORDER = FILE_KEYWORDS.map((k) => k.toLowerCase());

/** The spec without spans and file name, with files in canonical (kind, then bytewise pattern) order. */
function comparable(spec: ModelfileSpec): unknown {
  const { spans: _spans, file: _file, files, ...rest } = spec;
  const canon = files
    .map((f) => ({ kind: f.kind, pattern: f.pattern }))
    .sort((a, b) => KIND_ORDER.indexOf(a.kind) - KIND_ORDER.indexOf(b.kind) || Buffer.compare(Buffer.from(a.pattern), Buffer.from(b.pattern)));
  return { ...rest, files: canon };
}

const SOURCES: Record<string, string> = {
  'modctl-generated fixture': fixture('valid/modctl-generated.Modelfile'),
  'extensions fixture': fixture('valid/extensions.Modelfile'),
  'paths with spaces, quotes and backslashes': [
    'NAME "my \\"quoted\\" model"',
    'MODEL "weights dir/model 1.safetensors"',
    'MODEL "say \\"hi\\".bin"',
    'MODEL C:\\\\models\\\\x.bin',
    'MODEL "trailing\\\\"',
    'CODE "two  spaces.py"',
    "DOC it's.md",
    'DOC "#not a comment.md"',
    'DATASET "data/ü ñ/*.parquet"',
    'CONFIG "\u00a0nbsp-leading.json"',
  ].join('\n'),
  'only files, unsorted and mixed kinds': 'DOC z.md\nMODEL b.bin\nCONFIG c.json\nMODEL a.bin\nDATASET d\nCODE Z.py\nCODE a.py\nMODEL B.bin\n',
  'only metadata': 'PARAMSIZE 8b\nNAME n\nREWARD TRUE\nTOOLUSAGE no\nKNOWLEDGECUTOFF 2024-01-01T10:00:00+02:00\nLANGUAGE fr\n',
  'empty': '',
};

for (const [name, src] of Object.entries(SOURCES)) {
  test(`render round-trip: ${name}`, () => {
    const spec = parseModelfile(src);
    const text = renderModelfile(spec);
    const again = parseModelfile(text);
    assert.deepEqual(comparable(again), comparable(spec));
    // Rendering is canonical: rendering the re-parsed spec gives the same bytes.
    assert.equal(renderModelfile(again), text);
    assert.ok(!/Generated at/.test(text));
  });
}

test('render of a hand-built spec with awkward values round-trips; empty values are omitted', () => {
  const span = { line: 1, column: 1, length: 1 };
  const spec: ModelfileSpec = {
    file: 'x',
    name: 'a "b" \\ c',
    description: '',
    authors: ["O'Brien", 'back\\slash', ' lead and trail '],
    licenses: ['MIT'],
    datasetsURL: [],
    capabilities: { inputTypes: ['image', 'text'], reasoning: false },
    files: [
      { kind: 'model', pattern: 'w w.bin', span },
      { kind: 'config', pattern: 'c\\"q.json', span },
    ],
    spans: {},
  };
  const text = renderModelfile(spec);
  assert.ok(!text.includes('DESCRIPTION'), text);
  const { description: _d, ...expected } = spec;
  assert.deepEqual(comparable(parseModelfile(text)), comparable(expected));
});

test('canonical layout and order', () => {
  const src = [
    '# Generated at 2025-01-01T00:00:00Z',
    'model b.bin',
    'LANGUAGE en',
    'DOC README.md',
    'quantization awq',
    'MODEL "a b.bin"',
    'AUTHOR Ada',
    'NAME demo',
    'CODE run.py',
    'REASONING yes',
    'CONFIG config.json',
    'DATASET data.csv',
    'ARCH transformer',
    'MODEL A.bin',
    'VERSION 1.0',
    'KNOWLEDGECUTOFF 2024-06-01',
    'MODEL a b.bin',
  ].join('\n');
  // The last line has two arguments; drop it for this test.
  const spec = parseModelfile(src.split('\n').slice(0, -1).join('\n'));
  assert.equal(
    renderModelfile(spec),
    [
      'NAME demo',
      'ARCH transformer',
      'QUANTIZATION awq',
      '',
      'AUTHOR Ada',
      'VERSION 1.0',
      'KNOWLEDGECUTOFF 2024-06-01T00:00:00Z',
      'REASONING true',
      'LANGUAGE en',
      '',
      'CONFIG config.json',
      '',
      'MODEL A.bin',
      'MODEL "a b.bin"',
      'MODEL b.bin',
      '',
      'CODE run.py',
      '',
      'DOC README.md',
      '',
      'DATASET data.csv',
      '',
    ].join('\n'),
  );
});

test('quoteValue quotes only when needed', () => {
  assert.equal(quoteValue('plain.bin'), 'plain.bin');
  assert.equal(quoteValue('dir/*.safetensors'), 'dir/*.safetensors');
  assert.equal(quoteValue("it's"), "it's");
  assert.equal(quoteValue('a b'), '"a b"');
  assert.equal(quoteValue(''), '""');
  assert.equal(quoteValue('say "hi"'), '"say \\"hi\\""');
  assert.equal(quoteValue('C:\\x'), '"C:\\\\x"');
  assert.equal(quoteValue('a\tb'), '"a\tb"');
  assert.equal(quoteValue('nb\u00a0sp'), '"nb\u00a0sp"');
});

test('an empty spec renders to the empty string', () => {
  assert.equal(renderModelfile(parseModelfile('# only a comment\n')), '');
});
