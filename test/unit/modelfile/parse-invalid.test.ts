import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ModelfileError, formatDiagnostic, type Diagnostic } from '../../../src/errors.js';
import { parseModelfile, suggestKeyword } from '../../../src/modelfile/index.js';

const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
const fixture = (name: string): string => readFileSync(`${ROOT}fixtures/modelfiles/${name}`, 'utf8');

interface Expected {
  line: number;
  column: number;
  /** Substring of the message. */
  message: string;
  /** Substring of the hint, when given. */
  hint?: string;
  length?: number;
}

interface Case {
  name: string;
  text: string;
  /** Every diagnostic, in order; the count must match exactly. */
  errors: Expected[];
}

function diagnosticsOf(text: string, file = 'Modelfile'): Diagnostic[] {
  try {
    parseModelfile(text, { file });
  } catch (err) {
    assert.ok(err instanceof ModelfileError, `expected ModelfileError, got ${String(err)}`);
    return err.diagnostics;
  }
  assert.fail('expected the Modelfile to be rejected');
}

const CASES: Case[] = [
  // Unknown keywords.
  { name: 'MDOEL suggests MODEL', text: 'MDOEL model.bin', errors: [{ line: 1, column: 1, length: 5, message: 'unknown instruction "MDOEL"', hint: 'did you mean MODEL?' }] },
  { name: 'MODELS suggests MODEL (prefix)', text: 'NAME x\nMODELS a.bin', errors: [{ line: 2, column: 1, message: 'unknown instruction "MODELS"', hint: 'did you mean MODEL?' }] },
  { name: 'NAEM suggests NAME', text: 'NAEM demo', errors: [{ line: 1, column: 1, message: 'unknown instruction "NAEM"', hint: 'did you mean NAME?' }] },
  { name: 'lower-case typo keeps its spelling', text: 'confg a.json', errors: [{ line: 1, column: 1, message: 'unknown instruction "confg"', hint: 'did you mean CONFIG?' }] },
  { name: 'QUANT suggests QUANTIZATION (prefix)', text: 'QUANT awq', errors: [{ line: 1, column: 1, message: 'unknown instruction "QUANT"', hint: 'did you mean QUANTIZATION?' }] },
  { name: 'Ollama FROM lists the valid keywords', text: 'FROM llama3', errors: [{ line: 1, column: 1, message: 'unknown instruction "FROM"', hint: 'valid instructions: CONFIG, MODEL, CODE, DOC, DATASET, NAME' }] },
  { name: 'indented unknown keyword, column in the untrimmed line', text: '   PARAMETER temperature 0.7', errors: [{ line: 1, column: 4, length: 9, message: 'unknown instruction "PARAMETER"', hint: 'valid instructions:' }] },
  { name: 'quote glued to the keyword', text: 'MODEL"x.bin"', errors: [{ line: 1, column: 1, message: 'unknown instruction "MODEL"x.bin""', hint: 'did you mean MODEL?' }] },
  { name: 'BOM is not counted in columns', text: '\uFEFFMDOEL x', errors: [{ line: 1, column: 1, message: 'unknown instruction "MDOEL"' }] },
  // Tab after the keyword.
  { name: 'tab after keyword', text: 'MODEL\tmodel.bin', errors: [{ line: 1, column: 6, length: 1, message: 'expected a space after the keyword MODEL, found a tab' }] },
  { name: 'tab after indented lower-case keyword', text: '# c\n  name\tdemo', errors: [{ line: 2, column: 7, message: 'expected a space after the keyword NAME' }] },
  // Argument count.
  { name: 'keyword only', text: 'NAME', errors: [{ line: 1, column: 5, message: 'missing argument: NAME expects exactly one argument' }] },
  { name: 'keyword with trailing whitespace only', text: '  MODEL   \t', errors: [{ line: 1, column: 8, message: 'missing argument: MODEL' }] },
  { name: 'keyword then a lone backslash', text: 'MODEL \\', errors: [{ line: 1, column: 6, message: 'missing argument' }] },
  { name: 'keyword only, extension', text: 'REASONING', errors: [{ line: 1, column: 10, message: 'missing argument: REASONING' }] },
  { name: 'empty quoted argument', text: 'NAME ""', errors: [{ line: 1, column: 6, length: 2, message: 'empty argument: NAME needs a non-empty value' }] },
  { name: 'two arguments', text: 'CODE a.py b.py', errors: [{ line: 1, column: 11, length: 4, message: 'CODE expects exactly one argument, got 2', hint: 'quote a value that contains spaces' }] },
  { name: 'unquoted value with spaces', text: 'NAME my model name', errors: [{ line: 1, column: 9, length: 10, message: 'NAME expects exactly one argument, got 3', hint: 'NAME "my model name"' }] },
  { name: 'inline comment', text: 'MODEL x.bin # weights', errors: [{ line: 1, column: 13, length: 9, message: 'MODEL expects exactly one argument, got 3', hint: 'inline comments are not supported' }] },
  { name: 'empty token plus a second argument', text: 'MODEL "" x', errors: [{ line: 1, column: 10, message: 'MODEL expects exactly one argument, got 2' }] },
  { name: 'quoted first argument then extra', text: 'MODEL "a b" c', errors: [{ line: 1, column: 13, message: 'expects exactly one argument' }] },
  { name: 'columns count characters, not bytes', text: 'MODEL 模型 x', errors: [{ line: 1, column: 10, message: 'expects exactly one argument' }] },
  { name: 'leading tabs count as one column each', text: '\t\tNAME a b', errors: [{ line: 1, column: 10, message: 'expects exactly one argument' }] },
  { name: 'CRLF line ending', text: 'CONFIG a.json\r\nCONFIG b.json c.json\r\n', errors: [{ line: 2, column: 15, message: 'CONFIG expects exactly one argument, got 2' }] },
  // Quotes.
  { name: 'unclosed quote', text: 'DOC "README.md', errors: [{ line: 1, column: 5, length: 1, message: 'unclosed quote' }] },
  { name: 'unclosed quote after a token', text: 'MODEL a "b c', errors: [{ line: 1, column: 9, message: 'unclosed quote' }] },
  { name: 'escaped closing quote leaves the quote open', text: 'NAME "abc\\"', errors: [{ line: 1, column: 6, message: 'unclosed quote' }] },
  // Duplicates.
  { name: 'duplicate NAME', text: '# c\nNAME a\nNAME b', errors: [{ line: 3, column: 1, length: 4, message: 'duplicate NAME instruction (first set on line 2)' }] },
  { name: 'duplicate ARCH in other case', text: 'ARCH transformer\n  arch cnn', errors: [{ line: 2, column: 3, message: 'duplicate ARCH instruction (first set on line 1)' }] },
  { name: 'duplicate FAMILY with identical value', text: 'FAMILY llama\nFAMILY llama', errors: [{ line: 2, column: 1, message: 'duplicate FAMILY instruction (first set on line 1)' }] },
  { name: 'duplicate FORMAT', text: 'FORMAT gguf\nMODEL a\nFORMAT safetensors', errors: [{ line: 3, column: 1, message: 'duplicate FORMAT instruction (first set on line 1)' }] },
  { name: 'duplicate PARAMSIZE', text: 'PARAMSIZE 8b\nPARAMSIZE 7b', errors: [{ line: 2, column: 1, message: 'duplicate PARAMSIZE instruction (first set on line 1)' }] },
  { name: 'duplicate PRECISION', text: 'PRECISION bf16\nPRECISION fp16', errors: [{ line: 2, column: 1, message: 'duplicate PRECISION instruction (first set on line 1)' }] },
  {
    name: 'QUANTIZATION three times gives two errors',
    text: 'QUANTIZATION awq\nQUANTIZATION gptq\nQUANTIZATION awq',
    errors: [
      { line: 2, column: 1, message: 'duplicate QUANTIZATION instruction (first set on line 1)' },
      { line: 3, column: 1, message: 'duplicate QUANTIZATION instruction (first set on line 1)' },
    ],
  },
  { name: 'duplicate VERSION (single extension)', text: 'VERSION 1\nVERSION 2', errors: [{ line: 2, column: 1, message: 'duplicate VERSION instruction (first set on line 1)' }] },
  // Extension values.
  { name: 'bad modality', text: 'INPUTTYPE speech', errors: [{ line: 1, column: 11, length: 6, message: 'invalid INPUTTYPE "speech": must be one of text, image, audio, video, embedding, other' }] },
  { name: 'modality in upper case', text: 'OUTPUTTYPE Text', errors: [{ line: 1, column: 12, message: 'invalid OUTPUTTYPE "Text"', hint: 'use lower case: OUTPUTTYPE text' }] },
  { name: 'three-letter language', text: 'LANGUAGE eng', errors: [{ line: 1, column: 10, length: 3, message: 'invalid LANGUAGE "eng": expected a two-letter lower-case ISO 639-1 code' }] },
  { name: 'upper-case language', text: 'LANGUAGE EN', errors: [{ line: 1, column: 10, message: 'invalid LANGUAGE "EN"', hint: 'use lower case: LANGUAGE en' }] },
  { name: 'bad boolean', text: 'REASONING maybe', errors: [{ line: 1, column: 11, length: 5, message: 'invalid REASONING "maybe": expected true, false, yes or no' }] },
  { name: 'numeric boolean', text: 'TOOLUSAGE 1', errors: [{ line: 1, column: 11, message: 'invalid TOOLUSAGE "1"' }] },
  { name: 'bad month', text: 'KNOWLEDGECUTOFF 2024-13-01', errors: [{ line: 1, column: 17, length: 10, message: 'invalid KNOWLEDGECUTOFF "2024-13-01": expected an RFC 3339 date-time' }] },
  { name: 'Feb 29 in a non-leap year', text: 'KNOWLEDGECUTOFF 2023-02-29', errors: [{ line: 1, column: 17, message: 'invalid KNOWLEDGECUTOFF' }] },
  { name: 'date-time without seconds', text: 'KNOWLEDGECUTOFF 2024-06-01T12:00Z', errors: [{ line: 1, column: 17, message: 'invalid KNOWLEDGECUTOFF' }] },
  { name: 'date-time without offset', text: 'KNOWLEDGECUTOFF 2024-06-01T12:00:00', errors: [{ line: 1, column: 17, message: 'invalid KNOWLEDGECUTOFF' }] },
  { name: 'free-text date', text: 'KNOWLEDGECUTOFF "June 2024"', errors: [{ line: 1, column: 17, length: 11, message: 'invalid KNOWLEDGECUTOFF "June 2024"' }] },
  // Control characters.
  { name: 'control character in a path', text: 'MODEL a\u0001b.bin', errors: [{ line: 1, column: 7, message: 'MODEL value contains a control character (U+0001)' }] },
  { name: 'tab inside a quoted name', text: 'NAME "a\tb"', errors: [{ line: 1, column: 6, length: 5, message: 'NAME value contains a control character (U+0009)' }] },
  { name: 'DEL in an extension value', text: 'DESCRIPTION x\u007fy', errors: [{ line: 1, column: 13, message: 'DESCRIPTION value contains a control character (U+007F)' }] },
  { name: 'lone CR inside a line', text: 'NAME a\rb\n', errors: [{ line: 1, column: 6, message: 'control character (U+000D)' }] },
  // Several errors in one file, all reported in line order.
  {
    name: 'several errors (fixture)',
    text: fixture('invalid/several-errors.Modelfile'),
    errors: [
      { line: 2, column: 13, message: 'MODEL expects exactly one argument, got 3' },
      { line: 3, column: 1, message: 'duplicate NAME instruction (first set on line 1)' },
      { line: 4, column: 11, message: 'invalid INPUTTYPE "speech"' },
      { line: 5, column: 5, message: 'unclosed quote' },
    ],
  },
  { name: 'unknown keyword (fixture)', text: fixture('invalid/unknown-keyword.Modelfile'), errors: [{ line: 2, column: 1, message: 'unknown instruction "MDOEL"', hint: 'did you mean MODEL?' }] },
  {
    name: 'syntax and semantic errors interleave in line order',
    text: 'NAME a\nMDOEL x\nNAME b\nMODEL\ty\nLANGUAGE fr\nLANGUAGE xyz\nREASONING yes\nREASONING maybe\nCODE "a\nDOC ""',
    errors: [
      { line: 2, column: 1, message: 'unknown instruction "MDOEL"' },
      { line: 3, column: 1, message: 'duplicate NAME instruction (first set on line 1)' },
      { line: 4, column: 6, message: 'expected a space after the keyword MODEL' },
      { line: 6, column: 10, message: 'invalid LANGUAGE "xyz"' },
      { line: 8, column: 1, message: 'duplicate REASONING instruction (first set on line 7)' },
      { line: 8, column: 11, message: 'invalid REASONING "maybe"' },
      { line: 9, column: 6, message: 'unclosed quote' },
      { line: 10, column: 5, message: 'empty argument: DOC' },
    ],
  },
];

for (const c of CASES) {
  test(`invalid: ${c.name}`, () => {
    const ds = diagnosticsOf(c.text);
    const show = ds.map(formatDiagnostic).join('\n');
    assert.equal(ds.length, c.errors.length, `diagnostic count\n${show}`);
    const lines = c.text.replace(/^\uFEFF/, '').split('\n');
    c.errors.forEach((e, i) => {
      const d = ds[i];
      assert.equal(d.file, 'Modelfile');
      assert.equal(d.line, e.line, `line of #${i}\n${show}`);
      assert.equal(d.column, e.column, `column of #${i}\n${show}`);
      if (e.length !== undefined) assert.equal(d.length, e.length, `length of #${i}\n${show}`);
      assert.ok(d.length >= 1);
      assert.ok(d.message.includes(e.message), `message of #${i}: ${JSON.stringify(d.message)} lacks ${JSON.stringify(e.message)}`);
      if (e.hint !== undefined) assert.ok(d.hint?.includes(e.hint), `hint of #${i}: ${JSON.stringify(d.hint)} lacks ${JSON.stringify(e.hint)}`);
      assert.equal(d.source, lines[e.line - 1].replace(/\r$/, ''), `source of #${i}`);
    });
  });
}

test('at least 30 invalid cases', () => {
  assert.ok(CASES.length >= 30, `${CASES.length}`);
});

test('ModelfileError summarises one or many diagnostics', () => {
  try {
    parseModelfile('NAME a b', { file: 'm/Modelfile' });
    assert.fail('expected an error');
  } catch (err) {
    assert.ok(err instanceof ModelfileError);
    assert.equal(err.message, 'm/Modelfile:1:8: NAME expects exactly one argument, got 2');
    assert.equal(err.code, 'E_MODELFILE');
  }
  try {
    parseModelfile('NAME a b\nFOO x', { file: 'm/Modelfile' });
    assert.fail('expected an error');
  } catch (err) {
    assert.ok(err instanceof ModelfileError);
    assert.equal(err.message, '2 errors in m/Modelfile');
  }
});

test('formatDiagnostic renders file:line:column, the source line and a caret', () => {
  const [d] = diagnosticsOf('# weights\n  MODEL x.bin # the weights\n', 'models/demo/Modelfile');
  assert.equal(
    formatDiagnostic(d),
    [
      'models/demo/Modelfile:2:15: MODEL expects exactly one argument, got 4',
      '    MODEL x.bin # the weights',
      '                ^^^^^^^^^^^^^',
      '  hint: inline comments are not supported; put the comment on its own line',
    ].join('\n'),
  );
});

test('suggestKeyword', () => {
  assert.equal(suggestKeyword('MDOEL'), 'MODEL');
  assert.equal(suggestKeyword('models'), 'MODEL');
  assert.equal(suggestKeyword('NAEM'), 'NAME');
  assert.equal(suggestKeyword('DATASETS'), 'DATASET');
  assert.equal(suggestKeyword('LICENCE'), 'LICENSE');
  assert.equal(suggestKeyword('TEMPLATE'), undefined);
  assert.equal(suggestKeyword('X'), undefined);
});
