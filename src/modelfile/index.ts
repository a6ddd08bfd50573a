/** Public surface of the Modelfile module (modctl dialect plus additive extension instructions). */

export {
  KEYWORDS,
  MODCTL_KEYWORDS,
  EXTENSION_KEYWORDS,
  FILE_KEYWORDS,
  MODCTL_SINGLE_KEYWORDS,
  MODALITIES,
} from './ast.js';
export type {
  Span,
  FileKind,
  FilePattern,
  ModelfileSpec,
  Capabilities,
  Keyword,
  FileKeyword,
  ModctlSingleKeyword,
  ExtensionKeyword,
  ExtensionKeywordInfo,
  ExtensionValueType,
  Modality,
  Instruction,
  FileInstruction,
  SingleInstruction,
  ListInstruction,
  ModelfileAST,
} from './ast.js';
export { lex, lexLine, splitLines } from './lexer.js';
export type { Token, LexError, LexedLine, BlankLine, CommentLine, InstructionLine } from './lexer.js';
export { parse, parseLines, parseModelfile, suggestKeyword, DEFAULT_FILE } from './parser.js';
export type { ParseResult } from './parser.js';
export { validate } from './validate.js';
export type { ValidateResult } from './validate.js';
export { renderModelfile, quoteValue } from './render.js';
