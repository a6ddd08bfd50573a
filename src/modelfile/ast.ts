/**
 * Modelfile AST and spec types, and the keyword tables (modctl's 12 instructions plus our additive extensions).
 * Every node carries 1-based source spans so diagnostics can point at the offending text.
 */

import type { ModelConfig } from '../oci/types.js';

/** 1-based position of a piece of source text; `column` and `length` count characters (code points). */
export interface Span {
  line: number;
  column: number;
  length: number;
}

export type FileKind = 'config' | 'model' | 'code' | 'doc' | 'dataset';

export interface FilePattern {
  kind: FileKind;
  pattern: string;
  span: Span;
}

export type Capabilities = NonNullable<ModelConfig['config']['capabilities']>;

export interface ModelfileSpec {
  /** Display name used in diagnostics. */
  file: string;
  name?: string;
  arch?: string;
  family?: string;
  format?: string;
  paramSize?: string;
  precision?: string;
  quantization?: string;
  authors: string[];
  version?: string;
  revision?: string;
  vendor?: string;
  title?: string;
  description?: string;
  licenses: string[];
  docURL?: string;
  sourceURL?: string;
  datasetsURL: string[];
  capabilities: Capabilities;
  /** In source order; identical (kind, pattern) pairs collapsed to the first. */
  files: FilePattern[];
  /** Span of each single-value instruction's argument, keyed by keyword lowercased (`name`, `knowledgecutoff`). */
  spans: Partial<Record<string, Span>>;
}

/** The file instructions of modctl, in its processor order (DATASET last). */
export const FILE_KEYWORDS = ['CONFIG', 'MODEL', 'CODE', 'DOC', 'DATASET'] as const;
export type FileKeyword = (typeof FILE_KEYWORDS)[number];

/** modctl's single-value instructions, in canonical render order. */
export const MODCTL_SINGLE_KEYWORDS = [
  'NAME',
  'ARCH',
  'FAMILY',
  'FORMAT',
  'PARAMSIZE',
  'PRECISION',
  'QUANTIZATION',
] as const;
export type ModctlSingleKeyword = (typeof MODCTL_SINGLE_KEYWORDS)[number];

/** The 12 instructions modctl itself accepts. */
export const MODCTL_KEYWORDS: readonly string[] = [...FILE_KEYWORDS, ...MODCTL_SINGLE_KEYWORDS];

export type ExtensionValueType = 'string' | 'modality' | 'datetime' | 'boolean' | 'language';

export interface ExtensionKeywordInfo {
  keyword: string;
  /** true: may appear many times (values collected, identical values collapsed); false: a repeat is an error. */
  repeatable: boolean;
  /** How the argument is checked. */
  valueType: ExtensionValueType;
  /** Where the value lands in the ModelPack config blob. */
  target: string;
  /** One-line description (the README table is generated from this). */
  description: string;
}

/** Additive instructions modctl does not know; each maps onto a ModelPack config field. Canonical render order. */
export const EXTENSION_KEYWORDS = [
  { keyword: 'AUTHOR', repeatable: true, valueType: 'string', target: 'descriptor.authors', description: 'An author of the model (repeat for several).' },
  { keyword: 'VERSION', repeatable: false, valueType: 'string', target: 'descriptor.version', description: 'Version of the packaged model.' },
  { keyword: 'REVISION', repeatable: false, valueType: 'string', target: 'descriptor.revision', description: 'Source revision (e.g. a git commit); overrides detection.' },
  { keyword: 'VENDOR', repeatable: false, valueType: 'string', target: 'descriptor.vendor', description: 'Organisation that distributes the model.' },
  { keyword: 'TITLE', repeatable: false, valueType: 'string', target: 'descriptor.title', description: 'Human-readable title of the model.' },
  { keyword: 'DESCRIPTION', repeatable: false, valueType: 'string', target: 'descriptor.description', description: 'Short human-readable description of the model.' },
  { keyword: 'LICENSE', repeatable: true, valueType: 'string', target: 'descriptor.licenses', description: 'SPDX license expression, kept as text (repeat for several).' },
  { keyword: 'DOCURL', repeatable: false, valueType: 'string', target: 'descriptor.docURL', description: 'URL of the model documentation.' },
  { keyword: 'SOURCEURL', repeatable: false, valueType: 'string', target: 'descriptor.sourceURL', description: 'URL of the model source; overrides git detection.' },
  { keyword: 'DATASETURL', repeatable: true, valueType: 'string', target: 'descriptor.datasetsURL', description: 'URL of a training dataset (repeat for several).' },
  { keyword: 'INPUTTYPE', repeatable: true, valueType: 'modality', target: 'config.capabilities.inputTypes', description: 'Input modality: text, image, audio, video, embedding or other (repeatable).' },
  { keyword: 'OUTPUTTYPE', repeatable: true, valueType: 'modality', target: 'config.capabilities.outputTypes', description: 'Output modality: text, image, audio, video, embedding or other (repeatable).' },
  { keyword: 'KNOWLEDGECUTOFF', repeatable: false, valueType: 'datetime', target: 'config.capabilities.knowledgeCutoff', description: 'Knowledge cutoff: RFC 3339 date-time, or YYYY-MM-DD (read as midnight UTC).' },
  { keyword: 'REASONING', repeatable: false, valueType: 'boolean', target: 'config.capabilities.reasoning', description: 'Whether the model can reason: true/false/yes/no.' },
  { keyword: 'TOOLUSAGE', repeatable: false, valueType: 'boolean', target: 'config.capabilities.toolUsage', description: 'Whether the model can use tools: true/false/yes/no.' },
  { keyword: 'REWARD', repeatable: false, valueType: 'boolean', target: 'config.capabilities.reward', description: 'Whether the model is a reward model: true/false/yes/no.' },
  { keyword: 'LANGUAGE', repeatable: true, valueType: 'language', target: 'config.capabilities.languages', description: 'Supported language as a two-letter ISO 639-1 code, lower case (repeatable).' },
] as const satisfies readonly ExtensionKeywordInfo[];

export type ExtensionKeyword = (typeof EXTENSION_KEYWORDS)[number]['keyword'];

/** All accepted keywords, upper case: modctl's 12, then the extensions. */
export const KEYWORDS: readonly string[] = [...MODCTL_KEYWORDS, ...EXTENSION_KEYWORDS.map((e) => e.keyword)];

export type Keyword = FileKeyword | ModctlSingleKeyword | ExtensionKeyword;

export const MODALITIES = ['text', 'image', 'audio', 'video', 'embedding', 'other'] as const;
export type Modality = (typeof MODALITIES)[number];

export function isKeyword(s: string): s is Keyword {
  return KEYWORDS.includes(s);
}

export function isFileKeyword(k: string): k is FileKeyword {
  return (FILE_KEYWORDS as readonly string[]).includes(k);
}

export function extensionInfo(k: string): ExtensionKeywordInfo | undefined {
  return EXTENSION_KEYWORDS.find((e) => e.keyword === k);
}

/** True when a repeat of this keyword is an error. */
export function isSingleKeyword(k: Keyword): boolean {
  if (isFileKeyword(k)) return false;
  const ext = extensionInfo(k);
  return ext ? !ext.repeatable : true;
}

// ---------------------------------------------------------------------------------------------------------------
// AST

interface InstructionBase {
  /** Upper-cased keyword. */
  keyword: Keyword;
  /** The keyword as written. */
  keywordText: string;
  keywordSpan: Span;
  /** The argument after unquoting and unescaping. */
  value: string;
  valueSpan: Span;
  line: number;
  /** The source line, without its line ending. */
  source: string;
}

/** CONFIG / MODEL / CODE / DOC / DATASET: a path or glob. */
export interface FileInstruction extends InstructionBase {
  type: 'file';
  keyword: FileKeyword;
  kind: FileKind;
}

/** NAME, ARCH, … and the single-value extensions: at most one per file. */
export interface SingleInstruction extends InstructionBase {
  type: 'single';
}

/** Repeatable extensions (AUTHOR, LICENSE, INPUTTYPE, …): values are collected. */
export interface ListInstruction extends InstructionBase {
  type: 'list';
}

export type Instruction = FileInstruction | SingleInstruction | ListInstruction;

export interface ModelfileAST {
  file: string;
  instructions: Instruction[];
}
