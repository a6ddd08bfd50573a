/**
 * Render a ModelfileSpec back to canonical Modelfile text (used for the `org.cncf.modctl.modelfile` manifest
 * annotation). No timestamp line, so identical specs render to identical bytes:
 *   NAME ARCH FAMILY FORMAT PARAMSIZE PRECISION QUANTIZATION, then the extension instructions in EXTENSION_KEYWORDS
 *   order, then the CONFIG, MODEL, CODE, DOC, DATASET groups with their patterns sorted (bytewise, like Go).
 * parseModelfile(renderModelfile(spec)) yields the same spec apart from spans and the order of `files` (empty values,
 * which a parsed spec never holds, are omitted).
 */

import { EXTENSION_KEYWORDS, FILE_KEYWORDS, type FileKind, type ModelfileSpec } from './ast.js';
import { isSpaceChar } from './lexer.js';

/** Quote a value when the tokenizer would otherwise split, trim, unescape or drop it. */
export function quoteValue(value: string): string {
  const needsQuotes = value === '' || Array.from(value).some((c) => c === '"' || c === '\\' || isSpaceChar(c));
  if (!needsQuotes) return value;
  return `"${value.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

function compareBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

function line(keyword: string, value: string): string {
  return `${keyword} ${quoteValue(value)}`;
}

const KIND_OF: Record<(typeof FILE_KEYWORDS)[number], FileKind> = {
  CONFIG: 'config',
  MODEL: 'model',
  CODE: 'code',
  DOC: 'doc',
  DATASET: 'dataset',
};

function extensionValues(spec: ModelfileSpec, keyword: (typeof EXTENSION_KEYWORDS)[number]['keyword']): string[] {
  const caps = spec.capabilities;
  const one = (v: string | boolean | undefined): string[] => (v === undefined ? [] : [String(v)]);
  switch (keyword) {
    case 'AUTHOR': return spec.authors;
    case 'VERSION': return one(spec.version);
    case 'REVISION': return one(spec.revision);
    case 'VENDOR': return one(spec.vendor);
    case 'TITLE': return one(spec.title);
    case 'DESCRIPTION': return one(spec.description);
    case 'LICENSE': return spec.licenses;
    case 'DOCURL': return one(spec.docURL);
    case 'SOURCEURL': return one(spec.sourceURL);
    case 'DATASETURL': return spec.datasetsURL;
    case 'INPUTTYPE': return caps.inputTypes ?? [];
    case 'OUTPUTTYPE': return caps.outputTypes ?? [];
    case 'KNOWLEDGECUTOFF': return one(caps.knowledgeCutoff);
    case 'REASONING': return one(caps.reasoning);
    case 'TOOLUSAGE': return one(caps.toolUsage);
    case 'REWARD': return one(caps.reward);
    case 'LANGUAGE': return caps.languages ?? [];
  }
}

export function renderModelfile(spec: ModelfileSpec): string {
  const blocks: string[][] = [];

  const singles: [string, string | undefined][] = [
    ['NAME', spec.name],
    ['ARCH', spec.arch],
    ['FAMILY', spec.family],
    ['FORMAT', spec.format],
    ['PARAMSIZE', spec.paramSize],
    ['PRECISION', spec.precision],
    ['QUANTIZATION', spec.quantization],
  ];
  // Empty values are omitted (like modctl's generator): `NAME ""` would not parse back.
  blocks.push(singles.filter(([, v]) => v !== undefined && v !== '').map(([k, v]) => line(k, v as string)));

  const ext: string[] = [];
  for (const { keyword } of EXTENSION_KEYWORDS) for (const v of extensionValues(spec, keyword)) if (v !== '') ext.push(line(keyword, v));
  blocks.push(ext);

  for (const keyword of FILE_KEYWORDS) {
    const kind = KIND_OF[keyword];
    const patterns = [...new Set(spec.files.filter((f) => f.kind === kind).map((f) => f.pattern))].filter((p) => p !== '').sort(compareBytes);
    blocks.push(patterns.map((p) => line(keyword, p)));
  }

  const nonEmpty = blocks.filter((b) => b.length > 0);
  return nonEmpty.length === 0 ? '' : nonEmpty.map((b) => b.join('\n')).join('\n\n') + '\n';
}
