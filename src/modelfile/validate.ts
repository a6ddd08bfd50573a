/**
 * Semantic checks on a parsed Modelfile: single-value instructions set at most once, extension values well-formed,
 * no control characters. Produces the ModelfileSpec together with every diagnostic found.
 */

import * as z from 'zod/mini';
import '../util/zod.js';
import type { Diagnostic } from '../errors.js';
import {
  MODALITIES,
  extensionInfo,
  type Capabilities,
  type FilePattern,
  type Instruction,
  type ModelfileAST,
  type ModelfileSpec,
  type Modality,
} from './ast.js';

export interface ValidateResult {
  spec: ModelfileSpec;
  diagnostics: Diagnostic[];
}

type Check<T> = { ok: true; value: T } | { ok: false; message: string; hint?: string };

// eslint-disable-next-line no-control-regex
const CONTROL_RE = /[\u0000-\u001f\u007f-\u009f]/u;

const NonEmpty = z.string().check(z.minLength(1));
const ModalitySchema = z.enum(MODALITIES);
const LanguageSchema = z.string().check(z.regex(/^[a-z]{2}$/));
const BooleanSchema = z.pipe(
  z.pipe(
    z.pipe(
      z.string(),
      z.transform((s: string) => s.toLowerCase()),
    ),
    z.enum(['true', 'false', 'yes', 'no']),
  ),
  z.transform((s: 'true' | 'false' | 'yes' | 'no') => s === 'true' || s === 'yes'),
);

const DATE_RE = /^(\d{4})-(\d{2})-(\d{2})$/;
const DATETIME_RE = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-](\d{2}):(\d{2}))$/;

function validDate(y: number, m: number, d: number): boolean {
  if (m < 1 || m > 12 || d < 1) return false;
  const leap = (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
  const days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m - 1];
  return d <= days;
}

/** RFC 3339 date-time (upper-case T and Z), or a plain YYYY-MM-DD normalised to midnight UTC. */
export const DateTimeSchema = z.pipe(z.string(), z.transform((s: string, ctx) => {
  const date = DATE_RE.exec(s);
  if (date) {
    if (validDate(+date[1], +date[2], +date[3])) return `${s}T00:00:00Z`;
  } else {
    const dt = DATETIME_RE.exec(s);
    if (
      dt &&
      validDate(+dt[1], +dt[2], +dt[3]) &&
      +dt[4] <= 23 &&
      +dt[5] <= 59 &&
      +dt[6] <= 60 &&
      (dt[9] === undefined || (+dt[9] <= 23 && +dt[10] <= 59))
    ) {
      return s;
    }
  }
  ctx.issues.push({ code: 'custom', message: 'not an RFC 3339 date-time', input: s });
  return z.NEVER;
}));

function checkValue(keyword: string, value: string): Check<string | boolean> {
  const ctl = CONTROL_RE.exec(value);
  if (ctl) {
    const code = ctl[0].codePointAt(0) ?? 0;
    return {
      ok: false,
      message: `${keyword} value contains a control character (U+${code.toString(16).toUpperCase().padStart(4, '0')})`,
      hint: 'remove the control character; values must be printable text',
    };
  }
  if (keyword === 'NAME' && !NonEmpty.safeParse(value).success) return { ok: false, message: 'NAME must not be empty' };
  const ext = extensionInfo(keyword);
  switch (ext?.valueType) {
    case 'modality': {
      if (ModalitySchema.safeParse(value).success) return { ok: true, value };
      const lc = value.toLowerCase();
      return {
        ok: false,
        message: `invalid ${keyword} "${value}": must be one of ${MODALITIES.join(', ')}`,
        hint: ModalitySchema.safeParse(lc).success ? `use lower case: ${keyword} ${lc}` : undefined,
      };
    }
    case 'language': {
      if (LanguageSchema.safeParse(value).success) return { ok: true, value };
      const lc = value.toLowerCase();
      return {
        ok: false,
        message: `invalid LANGUAGE "${value}": expected a two-letter lower-case ISO 639-1 code such as en`,
        hint: LanguageSchema.safeParse(lc).success ? `use lower case: LANGUAGE ${lc}` : undefined,
      };
    }
    case 'boolean': {
      const r = BooleanSchema.safeParse(value);
      if (r.success) return { ok: true, value: r.data };
      return { ok: false, message: `invalid ${keyword} "${value}": expected true, false, yes or no` };
    }
    case 'datetime': {
      const r = DateTimeSchema.safeParse(value);
      if (r.success) return { ok: true, value: r.data };
      return {
        ok: false,
        message: `invalid ${keyword} "${value}": expected an RFC 3339 date-time such as 2024-06-01T00:00:00Z, or a date such as 2024-06-01`,
      };
    }
    default:
      return { ok: true, value };
  }
}

function pushUnique<T>(list: T[], v: T): void {
  if (!list.includes(v)) list.push(v);
}

function apply(spec: ModelfileSpec, ins: Instruction, value: string | boolean): void {
  const caps: Capabilities = spec.capabilities;
  const s = String(value);
  switch (ins.keyword) {
    case 'NAME': spec.name = s; break;
    case 'ARCH': spec.arch = s; break;
    case 'FAMILY': spec.family = s; break;
    case 'FORMAT': spec.format = s; break;
    case 'PARAMSIZE': spec.paramSize = s; break;
    case 'PRECISION': spec.precision = s; break;
    case 'QUANTIZATION': spec.quantization = s; break;
    case 'AUTHOR': pushUnique(spec.authors, s); break;
    case 'VERSION': spec.version = s; break;
    case 'REVISION': spec.revision = s; break;
    case 'VENDOR': spec.vendor = s; break;
    case 'TITLE': spec.title = s; break;
    case 'DESCRIPTION': spec.description = s; break;
    case 'LICENSE': pushUnique(spec.licenses, s); break;
    case 'DOCURL': spec.docURL = s; break;
    case 'SOURCEURL': spec.sourceURL = s; break;
    case 'DATASETURL': pushUnique(spec.datasetsURL, s); break;
    case 'INPUTTYPE': pushUnique((caps.inputTypes ??= []), s as Modality); break;
    case 'OUTPUTTYPE': pushUnique((caps.outputTypes ??= []), s as Modality); break;
    case 'KNOWLEDGECUTOFF': caps.knowledgeCutoff = s; break;
    case 'REASONING': caps.reasoning = value === true; break;
    case 'TOOLUSAGE': caps.toolUsage = value === true; break;
    case 'REWARD': caps.reward = value === true; break;
    case 'LANGUAGE': pushUnique((caps.languages ??= []), s); break;
    default: break; // file instructions are handled by the caller
  }
}

export function emptySpec(file: string): ModelfileSpec {
  return { file, authors: [], licenses: [], datasetsURL: [], capabilities: {}, files: [], spans: {} };
}

/** Semantic checks over the AST; returns the spec built from the valid instructions and all diagnostics. */
export function validate(ast: ModelfileAST): ValidateResult {
  const spec = emptySpec(ast.file);
  const diagnostics: Diagnostic[] = [];
  const firstLine = new Map<string, number>();
  const seenFiles = new Set<string>();

  const report = (ins: Instruction, span: Instruction['valueSpan'], message: string, hint?: string): void => {
    const d: Diagnostic = { file: ast.file, line: span.line, column: span.column, length: Math.max(1, span.length), message, source: ins.source };
    if (hint !== undefined) d.hint = hint;
    diagnostics.push(d);
  };

  for (const ins of ast.instructions) {
    let duplicate = false;
    if (ins.type === 'single') {
      const first = firstLine.get(ins.keyword);
      if (first !== undefined) {
        duplicate = true;
        report(ins, ins.keywordSpan, `duplicate ${ins.keyword} instruction (first set on line ${first})`, `remove one of the ${ins.keyword} lines`);
      } else {
        firstLine.set(ins.keyword, ins.line);
      }
    }

    const checked = checkValue(ins.keyword, ins.value);
    if (!checked.ok) {
      report(ins, ins.valueSpan, checked.message, checked.hint);
      continue;
    }
    if (duplicate) continue;

    if (ins.type === 'file') {
      const key = `${ins.kind}\0${ins.value}`;
      if (seenFiles.has(key)) continue;
      seenFiles.add(key);
      const fp: FilePattern = { kind: ins.kind, pattern: ins.value, span: ins.valueSpan };
      spec.files.push(fp);
      continue;
    }
    if (ins.type === 'single') spec.spans[ins.keyword.toLowerCase()] = ins.valueSpan;
    apply(spec, ins, checked.value);
  }
  return { spec, diagnostics };
}
