/**
 * Model variants as an OCI image index (pure logic; no IO). `modctl index create` writes an index whose entries carry
 * `org.cncf.model.variant.*` annotations read from each variant's config; `--variant key=value` on pull, extract and
 * fetch picks exactly one entry.
 *
 * Selector keys: `quantization`, `format`, `paramSize` (also `param-size`, `param_size`), `precision` (case-
 * insensitive) map to the `org.cncf.model.variant.<key>` annotations; `digest` matches the entry digest (full, or a
 * prefix of at least 12 hex digits); any other key is an annotation key, matched as given or with the variant prefix.
 * Values compare case-insensitively.
 */

import { ModctlError, UsageError } from '../errors.js';
import { MT_DOCKER_LIST, MT_OCI_INDEX } from '../oci/media-types.js';
import type { Descriptor } from '../oci/types.js';

export const ANN_VARIANT_PREFIX = 'org.cncf.model.variant.';
export const ANN_VARIANT_QUANTIZATION = `${ANN_VARIANT_PREFIX}quantization`;
export const ANN_VARIANT_FORMAT = `${ANN_VARIANT_PREFIX}format`;
export const ANN_VARIANT_PARAM_SIZE = `${ANN_VARIANT_PREFIX}paramSize`;
export const ANN_VARIANT_PRECISION = `${ANN_VARIANT_PREFIX}precision`;

/** Short selector keys (lower-cased) → annotation key. */
const SHORT_KEYS: Record<string, string> = {
  quantization: ANN_VARIANT_QUANTIZATION,
  format: ANN_VARIANT_FORMAT,
  paramsize: ANN_VARIANT_PARAM_SIZE,
  'param-size': ANN_VARIANT_PARAM_SIZE,
  param_size: ANN_VARIANT_PARAM_SIZE,
  precision: ANN_VARIANT_PRECISION,
};

export interface VariantSelector {
  /** As typed (for messages). */
  key: string;
  value: string;
}

/** Parse `--variant key=value` arguments (each may hold several, comma-separated). Throws UsageError. */
export function parseVariantSelectors(args: readonly string[] | undefined): VariantSelector[] {
  const out: VariantSelector[] = [];
  for (const arg of args ?? []) {
    for (const part of arg.split(',')) {
      const s = part.trim();
      if (s === '') continue;
      const eq = s.indexOf('=');
      const key = eq > 0 ? s.slice(0, eq).trim() : '';
      const value = eq > 0 ? s.slice(eq + 1).trim() : '';
      if (key === '' || value === '') {
        throw new UsageError(`--variant needs key=value, got ${JSON.stringify(s)}`, {
          hint: 'keys: quantization, format, paramSize, precision, digest, or any annotation key (e.g. --variant quantization=Q4_K_M)',
        });
      }
      out.push({ key, value });
    }
  }
  return out;
}

/** The variant annotations for a model's metadata (empty values left out). */
export function variantAnnotations(meta: { quantization?: string; modelFormat?: string; paramSize?: string; precision?: string }): Record<string, string> {
  const out: Record<string, string> = {};
  const set = (k: string, v: string | undefined) => {
    if (typeof v === 'string' && v.trim() !== '') out[k] = v.trim();
  };
  set(ANN_VARIANT_QUANTIZATION, meta.quantization);
  set(ANN_VARIANT_FORMAT, meta.modelFormat);
  set(ANN_VARIANT_PARAM_SIZE, meta.paramSize);
  set(ANN_VARIANT_PRECISION, meta.precision);
  return out;
}

/** `quantization=Q4_K_M format=gguf` for an index entry; other annotations keep their full key. */
export function describeVariant(d: Descriptor): string {
  const parts = Object.entries(d.annotations ?? {})
    .filter(([k]) => !k.startsWith('org.opencontainers.image.ref.'))
    .map(([k, v]) => `${k.startsWith(ANN_VARIANT_PREFIX) ? k.slice(ANN_VARIANT_PREFIX.length) : k}=${v}`);
  return parts.length ? parts.join(' ') : '(no variant annotations)';
}

function variantList(entries: readonly Descriptor[]): string {
  return entries.map((d) => `\n  ${d.digest.slice(0, 19)}  ${describeVariant(d)}`).join('');
}

/** Index entries that are variants (attestation manifests that BuildKit adds are not). */
export function variantEntries(index: { manifests: readonly Descriptor[] }): Descriptor[] {
  return index.manifests.filter((d) => d.annotations?.['vnd.docker.reference.type'] !== 'attestation-manifest');
}

function entryValues(d: Descriptor, key: string): string[] {
  const lower = key.toLowerCase();
  if (lower === 'digest') return [d.digest];
  const ann = d.annotations ?? {};
  const short = SHORT_KEYS[lower];
  if (short !== undefined) return ann[short] !== undefined ? [ann[short]] : [];
  const wanted = new Set([lower, (ANN_VARIANT_PREFIX + key).toLowerCase()]);
  return Object.entries(ann)
    .filter(([k]) => wanted.has(k.toLowerCase()))
    .map(([, v]) => v);
}

function matches(d: Descriptor, sel: VariantSelector): boolean {
  const want = sel.value.toLowerCase();
  if (sel.key.toLowerCase() === 'digest') {
    const have = d.digest.toLowerCase();
    if (have === want) return true;
    const hex = have.slice(have.indexOf(':') + 1);
    const w = want.includes(':') ? want.slice(want.indexOf(':') + 1) : want;
    return w.length >= 12 && hex.startsWith(w) && (!want.includes(':') || have.startsWith(want));
  }
  return entryValues(d, sel.key).some((v) => v.toLowerCase() === want);
}

function selectorText(selectors: readonly VariantSelector[]): string {
  return selectors.map((s) => `${s.key}=${s.value}`).join(', ');
}

/**
 * Pick exactly one entry of `index`. Without selectors a single-entry index gives that entry; several entries are an
 * error naming them. With selectors, no match or more than one is an error listing the variants. `what` names the
 * index in messages (its reference).
 */
export function selectVariant(index: { manifests: readonly Descriptor[] }, selectors: readonly VariantSelector[], what: string): Descriptor {
  const entries = variantEntries(index);
  if (entries.length === 0) throw new ModctlError('E_INDEX_EMPTY', `${what} is an image index without entries`);
  if (selectors.length === 0) {
    if (entries.length === 1) return entries[0];
    throw new ModctlError('E_IS_INDEX', `${what} is an image index with ${entries.length} variants; pick one with --variant key=value:${variantList(entries)}`, {
      hint: `for example --variant ${exampleSelector(entries)}`,
    });
  }
  const hits = entries.filter((d) => selectors.every((s) => matches(d, s)));
  if (hits.length === 1) return hits[0];
  if (hits.length === 0) {
    throw new ModctlError('E_VARIANT_NOT_FOUND', `no variant of ${what} matches ${selectorText(selectors)}; the variants are:${variantList(entries)}`, {
      hint: `pick one of the variants listed, e.g. --variant ${exampleSelector(entries)}`,
    });
  }
  throw new ModctlError('E_VARIANT_AMBIGUOUS', `${hits.length} variants of ${what} match ${selectorText(selectors)}:${variantList(hits)}`, {
    hint: 'add another --variant key=value (or --variant digest=<digest>) to pick exactly one',
  });
}

function exampleSelector(entries: readonly Descriptor[]): string {
  const ann = entries[0].annotations ?? {};
  const k = Object.keys(ann).find((x) => x.startsWith(ANN_VARIANT_PREFIX));
  return k ? `${k.slice(ANN_VARIANT_PREFIX.length)}=${ann[k]}` : `digest=${entries[0].digest}`;
}

/** Is this manifest media type (or parsed body) an index? */
export function isIndexMediaType(mt: string | undefined): boolean {
  return mt === MT_OCI_INDEX || mt === MT_DOCKER_LIST;
}

export interface VariantInput {
  /** The variant manifest's descriptor (mediaType, digest, size; artifactType when the manifest has one). */
  descriptor: Descriptor;
  annotations: Record<string, string>;
  /** For messages. */
  name: string;
}

/**
 * The image index for `variants` (OCI image-spec v1.1: `artifactType` on the index and on each entry). Entries keep
 * the given order. Two variants that no annotation tells apart get a warning through `onWarning`; two entries with
 * the same digest are an error.
 */
export function buildVariantIndex(variants: readonly VariantInput[], artifactType: string | undefined, onWarning?: (msg: string) => void): Record<string, unknown> {
  if (variants.length === 0) throw new UsageError('an index needs at least one variant');
  const seen = new Map<string, string>();
  const byLabel = new Map<string, string>();
  const manifests = variants.map((v) => {
    const prev = seen.get(v.descriptor.digest);
    if (prev !== undefined) throw new UsageError(`${v.name} and ${prev} are the same manifest (${v.descriptor.digest})`);
    seen.set(v.descriptor.digest, v.name);
    const label = JSON.stringify(Object.entries(v.annotations).sort());
    const twin = byLabel.get(label);
    if (twin !== undefined) onWarning?.(`variants ${twin} and ${v.name} have the same variant annotations; select them with --variant digest=…`);
    byLabel.set(label, v.name);
    const entry: Descriptor = { mediaType: v.descriptor.mediaType, digest: v.descriptor.digest, size: v.descriptor.size };
    if (v.descriptor.artifactType) entry.artifactType = v.descriptor.artifactType;
    if (Object.keys(v.annotations).length) entry.annotations = v.annotations;
    return entry;
  });
  const index: Record<string, unknown> = { schemaVersion: 2, mediaType: MT_OCI_INDEX };
  if (artifactType) index.artifactType = artifactType;
  index.manifests = manifests;
  return index;
}
