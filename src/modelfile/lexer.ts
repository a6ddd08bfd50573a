/**
 * Modelfile lexer: text → per-line tokens with 1-based line/column spans. No semantics: it neither knows the
 * keywords nor counts arguments; it only reports the one lexical error there is (an unclosed quote).
 *
 * Rules (modctl dialect, docs/modelpack.md §6.2): lines split on \n (a trailing \r and a UTF-8 BOM at file start are
 * dropped); each line is trimmed; empty lines are blank, lines starting with `#` are comments; otherwise the keyword
 * is the text before the first space (or tab), and the rest is split into arguments on spaces/tabs, where `"…"`
 * groups text, `""` is an empty token, `\` escapes the next character anywhere, and a trailing lone `\` is dropped.
 */

import type { Span } from './ast.js';

export interface Token {
  /** Decoded text (quotes removed, escapes applied). */
  value: string;
  /** The text exactly as written. */
  raw: string;
  /** True when any part of the token was quoted (so `""` is a real, empty token). */
  quoted: boolean;
  span: Span;
}

export interface LexError {
  line: number;
  column: number;
  length: number;
  message: string;
  hint?: string;
}

interface LineBase {
  /** 1-based line number. */
  line: number;
  /** The line as written, without its line ending (and without the BOM on line 1). */
  source: string;
}

export interface BlankLine extends LineBase {
  kind: 'blank';
}

export interface CommentLine extends LineBase {
  kind: 'comment';
  /** The comment text, from `#` to the end of the trimmed line. */
  comment: Token;
}

export interface InstructionLine extends LineBase {
  kind: 'instruction';
  keyword: Token;
  /** What ended the keyword: a space (the only valid separator), a tab, or the end of the line. */
  keywordEnd: 'space' | 'tab' | 'eol';
  args: Token[];
  /** Set when the arguments could not be tokenized (unclosed quote); `args` then holds the tokens before it. */
  error?: LexError;
}

export type LexedLine = BlankLine | CommentLine | InstructionLine;

/** Whitespace as Go's unicode.IsSpace sees it (what modctl's strings.TrimSpace trims). */
const SPACE_RE = /^[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]$/u;

export function isSpaceChar(c: string): boolean {
  return SPACE_RE.test(c);
}

function token(chars: string[], start: number, end: number, line: number, value: string, quoted: boolean): Token {
  return {
    value,
    raw: chars.slice(start, end).join(''),
    quoted,
    span: { line, column: start + 1, length: Math.max(1, end - start) },
  };
}

/** Split text into lines; tolerate CRLF and a BOM at the start of the file. */
export function splitLines(text: string): string[] {
  if (text.startsWith('\uFEFF')) text = text.slice(1);
  if (text === '') return [];
  const lines = text.split('\n').map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
  // A final newline does not start another line.
  if (lines.length > 0 && lines[lines.length - 1] === '' && text.endsWith('\n')) lines.pop();
  return lines;
}

/** Lex one line (1-based `lineNo`). */
export function lexLine(source: string, lineNo: number): LexedLine {
  const chars = Array.from(source);
  let start = 0;
  let end = chars.length;
  while (start < end && isSpaceChar(chars[start])) start++;
  while (end > start && isSpaceChar(chars[end - 1])) end--;

  if (start === end) return { kind: 'blank', line: lineNo, source };
  if (chars[start] === '#') {
    const text = chars.slice(start, end).join('');
    return { kind: 'comment', line: lineNo, source, comment: token(chars, start, end, lineNo, text, false) };
  }

  let kwEnd = start;
  while (kwEnd < end && chars[kwEnd] !== ' ' && chars[kwEnd] !== '\t') kwEnd++;
  const keyword = token(chars, start, kwEnd, lineNo, chars.slice(start, kwEnd).join(''), false);
  const keywordEnd = kwEnd === end ? 'eol' : chars[kwEnd] === '\t' ? 'tab' : 'space';

  const args: Token[] = [];
  let error: LexError | undefined;
  let i = kwEnd;
  let cur: { start: number; value: string; quoted: boolean } | undefined;
  const flush = (at: number): void => {
    // An unquoted token with no text can only come from a trailing lone backslash: drop it.
    if (cur && (cur.quoted || cur.value !== '')) args.push(token(chars, cur.start, at, lineNo, cur.value, cur.quoted));
    cur = undefined;
  };

  scan: while (i < end) {
    const c = chars[i];
    if (c === ' ' || c === '\t') {
      flush(i);
      i++;
      continue;
    }
    cur ??= { start: i, value: '', quoted: false };
    if (c === '\\') {
      if (i + 1 < end) cur.value += chars[i + 1];
      i += 2;
      continue;
    }
    if (c === '"') {
      const quoteAt = i;
      cur.quoted = true;
      i++;
      for (;;) {
        if (i >= end) {
          error = {
            line: lineNo,
            column: quoteAt + 1,
            length: 1,
            message: 'unclosed quote',
            hint: 'close the quoted text with ", or write a literal quote as \\"',
          };
          cur = undefined;
          break scan;
        }
        const d = chars[i];
        if (d === '\\') {
          if (i + 1 < end) cur.value += chars[i + 1];
          i += 2;
          continue;
        }
        i++;
        if (d === '"') break;
        cur.value += d;
      }
      continue;
    }
    cur.value += c;
    i++;
  }
  flush(Math.min(i, end));

  const line: InstructionLine = { kind: 'instruction', line: lineNo, source, keyword, keywordEnd, args };
  if (error) line.error = error;
  return line;
}

/** Lex a whole Modelfile. */
export function lex(text: string): LexedLine[] {
  return splitLines(text).map((l, idx) => lexLine(l, idx + 1));
}
