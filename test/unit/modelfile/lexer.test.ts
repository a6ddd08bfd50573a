import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lex, lexLine, splitLines, type InstructionLine } from '../../../src/modelfile/index.js';

function instr(source: string): InstructionLine {
  const l = lexLine(source, 7);
  assert.equal(l.kind, 'instruction');
  return l as InstructionLine;
}

test('splitLines handles LF, CRLF, BOM and a final newline', () => {
  assert.deepEqual(splitLines('a\nb\n'), ['a', 'b']);
  assert.deepEqual(splitLines('\uFEFFa\r\nb'), ['a', 'b']);
  assert.deepEqual(splitLines('a\n\nb\n\n'), ['a', '', 'b', '']);
  assert.deepEqual(splitLines(''), []);
});

test('line kinds', () => {
  assert.deepEqual(
    lex('  \n # c\nMODEL x\n').map((l) => l.kind),
    ['blank', 'comment', 'instruction'],
  );
});

test('keyword and argument tokens carry 1-based spans in the untrimmed line', () => {
  const l = instr('  model   "a b"\\ c  d');
  assert.deepEqual(l.keyword, { value: 'model', raw: 'model', quoted: false, span: { line: 7, column: 3, length: 5 } });
  assert.equal(l.keywordEnd, 'space');
  assert.deepEqual(l.args, [
    { value: 'a b c', raw: '"a b"\\ c', quoted: true, span: { line: 7, column: 11, length: 8 } },
    { value: 'd', raw: 'd', quoted: false, span: { line: 7, column: 21, length: 1 } },
  ]);
  assert.equal(l.error, undefined);
});

test('empty quoted token, tab terminator, end of line', () => {
  assert.deepEqual(instr('NAME ""').args.map((a) => [a.value, a.quoted, a.span.length]), [['', true, 2]]);
  assert.equal(instr('NAME\tx').keywordEnd, 'tab');
  assert.equal(instr('NAME').keywordEnd, 'eol');
  assert.deepEqual(instr('NAME').args, []);
});

test('trailing lone backslash is dropped, escaped backslash kept', () => {
  assert.deepEqual(instr('MODEL a\\').args.map((a) => a.value), ['a']);
  assert.deepEqual(instr('MODEL a \\').args.map((a) => a.value), ['a']);
  assert.deepEqual(instr('MODEL a\\\\').args.map((a) => a.value), ['a\\']);
});

test('unclosed quote is reported at the quote', () => {
  const l = instr('MODEL ok "never closed');
  assert.deepEqual(l.args.map((a) => a.value), ['ok']);
  assert.equal(l.error?.column, 10);
  assert.equal(l.error?.line, 7);
  assert.equal(l.error?.message, 'unclosed quote');
});

test('columns count code points', () => {
  const l = instr('MODEL 😀 x');
  assert.deepEqual(l.args.map((a) => a.span.column), [7, 9]);
});
