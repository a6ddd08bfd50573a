import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Ajv2020 as Ajv2020Type } from 'ajv/dist/2020.js';
import type { ModelConfig } from '../oci/types.js';
import type { ModelfileSpec } from '../modelfile/index.js';
import { ModctlError } from '../errors.js';
import { packageFile } from '../util/package-root.js';

// ajv is loaded on first use (it costs ~10 MB of heap that push/pull/extract never need); both packages are CommonJS.
const require = createRequire(import.meta.url);

let validator: ((data: unknown) => boolean) & { errors?: any[] | null };

/** The vendored ModelPack config schema (draft 2020-12), shipped in spec/. */
export function configSchema(): object {
  return JSON.parse(readFileSync(packageFile('spec/modelpack-config-schema.json'), 'utf8'));
}

/**
 * Load ajv and compile the schema now (~20 ms), if not done yet.
 */
export function prepareConfigValidator(): typeof validator {
  if (!validator) {
    const { Ajv2020 } = require('ajv/dist/2020.js') as { Ajv2020: typeof Ajv2020Type };
    const formats = require('ajv-formats');
    const addFormats = (formats.default ?? formats) as (ajv: unknown) => void;
    const ajv = new Ajv2020({ allErrors: true, strict: false });
    addFormats(ajv);
    validator = ajv.compile(configSchema()) as typeof validator;
  }
  return validator;
}

/**
 * prepareConfigValidator on the main thread shortly (while the caller's workers copy or upload), so the ~20 ms are
 * not paid after the last layer. Returns a cancel; a failure is left to validateConfig to report.
 */
export function prepareConfigValidatorSoon(): () => void {
  const t = setTimeout(() => {
    try {
      prepareConfigValidator();
    } catch {
      // validateConfig says what is wrong
    }
  }, 50);
  return () => clearTimeout(t);
}

/** Validate a config against the official schema; returns error strings (empty when valid). */
export function validateConfig(config: unknown): string[] {
  const validator = prepareConfigValidator();
  if (validator(config)) return [];
  return (validator.errors ?? []).map((e: any) => `${e.instancePath || '/'} ${e.message}${e.params?.additionalProperty ? ` (${e.params.additionalProperty})` : ''}`);
}

export interface ConfigInputs {
  spec: ModelfileSpec;
  diffIds: string[];
  createdAt?: string;
  sourceURL?: string;
  revision?: string;
  reasoning?: boolean;
}

function compact<T extends object>(o: T): T {
  const out: any = {};
  for (const [k, v] of Object.entries(o)) {
    if (v === undefined || v === '' || (Array.isArray(v) && v.length === 0)) continue;
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      const c = compact(v);
      if (Object.keys(c).length === 0) continue;
      out[k] = c;
    } else out[k] = v;
  }
  return out;
}

/** Build the config object. Keys are inserted in a fixed order so identical inputs serialise identically. */
export function buildConfig(inp: ConfigInputs): ModelConfig {
  const s = inp.spec;
  const caps = s.capabilities ?? {};
  const descriptor = compact({
    createdAt: inp.createdAt,
    authors: s.authors,
    family: s.family,
    name: s.name,
    docURL: s.docURL,
    sourceURL: inp.sourceURL ?? s.sourceURL,
    datasetsURL: s.datasetsURL,
    version: s.version,
    revision: inp.revision ?? s.revision,
    vendor: s.vendor,
    licenses: s.licenses,
    title: s.title,
    description: s.description,
  });
  const config = compact({
    architecture: s.arch,
    format: s.format,
    paramSize: s.paramSize,
    precision: s.precision,
    quantization: s.quantization,
    capabilities: compact({
      inputTypes: caps.inputTypes,
      outputTypes: caps.outputTypes,
      knowledgeCutoff: caps.knowledgeCutoff,
      reasoning: inp.reasoning ? true : caps.reasoning,
      toolUsage: caps.toolUsage,
      reward: caps.reward,
      languages: caps.languages,
    }),
  });
  // modctl marshals descriptor, modelfs, config in that order.
  return { descriptor, modelfs: { type: 'layers', diffIds: inp.diffIds }, config } as ModelConfig;
}

export function serializeConfig(config: ModelConfig): Buffer {
  return Buffer.from(JSON.stringify(config));
}

export function assertValidConfig(config: ModelConfig): void {
  const errs = validateConfig(config);
  if (errs.length) {
    throw new ModctlError('E_CONFIG_INVALID', `the model config does not pass the ModelPack schema: ${errs.join('; ')}`, {
      hint: config.modelfs.diffIds.length === 0 ? 'the Modelfile selects no files; add at least one MODEL, CONFIG, CODE, DOC or DATASET line' : 'check the Modelfile values',
    });
  }
}
