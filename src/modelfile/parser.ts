/**
 * Modelfile parser: lexed lines → AST. Syntax errors (unknown keyword, tab after the keyword, argument count, empty
 * argument, unclosed quote) are collected for every line; nothing stops at the first one.
 */

import { ModelfileError, type Diagnostic } from '../errors.js';
import {
  KEYWORDS,
  isFileKeyword,
  isKeyword,
  isSingleKeyword,
  type FileKind,
  type Instruction,
  type Keyword,
  type ModelfileAST,
  type ModelfileSpec,
  type Span,
} from './ast.js';
import { lex, type InstructionLine, type LexedLine } from './lexer.js';
import { validate } from './validate.js';

export const DEFAULT_FILE = 'Modelfile';

export interface ParseResult {
  ast: ModelfileAST;
  diagnostics: Diagnostic[];
}

export function diagnostic(file: string, source: string, span: Span, message: string, hint?: string): Diagnostic {
  const d: Diagnostic = { file, line: span.line, column: span.column, length: Math.max(1, span.length), message, source };
  if (hint !== undefined) d.hint = hint;
  return d;
}

/** Optimal string alignment distance (Levenshtein plus adjacent transpositions). */
export function editDistance(a: string, b: string): number {
  const m = a.length;
  const n = b.length;
  const d: number[][] = Array.from({ length: m + 1 }, (_, i) => Array.from({ length: n + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= m; i++) {
    for (let j = 1; j <= n; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[m][n];
}

/** The keyword an unknown word most likely meant: edit distance ≤ 2, or one is a prefix of the other. */
export function suggestKeyword(word: string): string | undefined {
  const w = word.toUpperCase();
  let best: { kw: string; score: number } | undefined;
  for (const kw of KEYWORDS) {
    const dist = editDistance(w, kw);
    const prefix = w.length >= 3 && (w.startsWith(kw) || kw.startsWith(w));
    if (dist > 2 && !prefix) continue;
    // Prefer the smallest distance; a prefix relation counts as distance 2.5 when the distance itself is larger.
    const score = dist <= 2 ? dist : 2.5;
    if (!best || score < best.score) best = { kw, score };
  }
  return best?.kw;
}

const KIND_OF: Record<string, FileKind> = { CONFIG: 'config', MODEL: 'model', CODE: 'code', DOC: 'doc', DATASET: 'dataset' };

function parseInstructionLine(l: InstructionLine, file: string, out: Diagnostic[]): Instruction | undefined {
  const kwText = l.keyword.value;
  const kw = kwText.toUpperCase();
  if (!isKeyword(kw)) {
    const suggestion = suggestKeyword(kwText);
    out.push(
      diagnostic(
        file,
        l.source,
        l.keyword.span,
        `unknown instruction "${kwText}"`,
        suggestion ? `did you mean ${suggestion}?` : `valid instructions: ${KEYWORDS.join(', ')}`,
      ),
    );
    return undefined;
  }
  const keyword: Keyword = kw;
  if (l.keywordEnd === 'tab') {
    const tab: Span = { line: l.line, column: l.keyword.span.column + l.keyword.span.length, length: 1 };
    out.push(
      diagnostic(file, l.source, tab, `expected a space after the keyword ${keyword}, found a tab`, 'separate the keyword from its argument with a space (modctl rejects a tab here)'),
    );
    return undefined;
  }
  if (l.error) {
    out.push(diagnostic(file, l.source, l.error, l.error.message, l.error.hint));
    return undefined;
  }
  if (l.args.length === 0) {
    const at: Span = { line: l.line, column: l.keyword.span.column + l.keyword.span.length, length: 1 };
    out.push(diagnostic(file, l.source, at, `missing argument: ${keyword} expects exactly one argument`, `write it as: ${keyword} <value>`));
    return undefined;
  }
  if (l.args.length > 1) {
    const second = l.args[1].span;
    const last = l.args[l.args.length - 1].span;
    const span: Span = { line: l.line, column: second.column, length: last.column + last.length - second.column };
    const comment = l.args.slice(1).some((a) => !a.quoted && a.raw.startsWith('#'));
    const hint = comment
      ? 'inline comments are not supported; put the comment on its own line'
      : `quote a value that contains spaces: ${keyword} "${l.args.map((a) => a.value).join(' ')}"`;
    out.push(diagnostic(file, l.source, span, `${keyword} expects exactly one argument, got ${l.args.length}`, hint));
    return undefined;
  }
  const arg = l.args[0];
  if (arg.value === '') {
    out.push(diagnostic(file, l.source, arg.span, `empty argument: ${keyword} needs a non-empty value`));
    return undefined;
  }
  const base = {
    keywordText: kwText,
    keywordSpan: l.keyword.span,
    value: arg.value,
    valueSpan: arg.span,
    line: l.line,
    source: l.source,
  };
  if (isFileKeyword(keyword)) return { type: 'file', keyword, kind: KIND_OF[keyword], ...base };
  if (isSingleKeyword(keyword)) return { type: 'single', keyword, ...base };
  return { type: 'list', keyword, ...base };
}

/** Lexed lines → AST plus syntax diagnostics (in line order). */
export function parseLines(lines: LexedLine[], file = DEFAULT_FILE): ParseResult {
  const diagnostics: Diagnostic[] = [];
  const instructions: Instruction[] = [];
  for (const l of lines) {
    if (l.kind !== 'instruction') continue;
    const ins = parseInstructionLine(l, file, diagnostics);
    if (ins) instructions.push(ins);
  }
  return { ast: { file, instructions }, diagnostics };
}

/** Text → AST plus syntax diagnostics. */
export function parse(text: string, opts: { file?: string } = {}): ParseResult {
  return parseLines(lex(text), opts.file ?? DEFAULT_FILE);
}

export function sortDiagnostics(ds: Diagnostic[]): Diagnostic[] {
  return ds
    .map((d, i) => ({ d, i }))
    .sort((a, b) => a.d.line - b.d.line || a.d.column - b.d.column || a.i - b.i)
    .map((x) => x.d);
}

/** Parse and check a Modelfile. Throws ModelfileError listing every diagnostic, in line order. */
export function parseModelfile(text: string, opts: { file?: string } = {}): ModelfileSpec {
  const file = opts.file ?? DEFAULT_FILE;
  const { ast, diagnostics } = parse(text, { file });
  const checked = validate(ast);
  const all = sortDiagnostics([...diagnostics, ...checked.diagnostics]);
  if (all.length > 0) throw new ModelfileError(all);
  return checked.spec;
}
