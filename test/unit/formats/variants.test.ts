import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ANN_VARIANT_FORMAT,
  ANN_VARIANT_PARAM_SIZE,
  ANN_VARIANT_PRECISION,
  ANN_VARIANT_QUANTIZATION,
  buildVariantIndex,
  describeVariant,
  parseVariantSelectors,
  selectVariant,
  variantAnnotations,
} from '../../../src/formats/variants.js';
import { ModctlError } from '../../../src/errors.js';
import type { Descriptor } from '../../../src/oci/types.js';

const OCI = 'application/vnd.oci.image.manifest.v1+json';
const hex = (c: string) => c.repeat(64);

function entry(c: string, ann: Record<string, string>): Descriptor {
  return { mediaType: OCI, digest: `sha256:${hex(c)}`, size: 500, annotations: ann };
}

const q4 = entry('a', { [ANN_VARIANT_QUANTIZATION]: 'Q4_K_M', [ANN_VARIANT_FORMAT]: 'gguf', [ANN_VARIANT_PARAM_SIZE]: '8B' });
const q8 = entry('b', { [ANN_VARIANT_QUANTIZATION]: 'Q8_0', [ANN_VARIANT_FORMAT]: 'gguf', [ANN_VARIANT_PARAM_SIZE]: '8B' });
const st = entry('c', { [ANN_VARIANT_FORMAT]: 'safetensors', [ANN_VARIANT_PARAM_SIZE]: '8B', [ANN_VARIANT_PRECISION]: 'bfloat16', 'com.example.tier': 'gold' });
const index = { manifests: [q4, q8, st] };

function sel(...args: string[]) {
  return parseVariantSelectors(args);
}

function err(fn: () => unknown): ModctlError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof ModctlError, String(e));
    return e;
  }
  assert.fail('expected an error');
}

test('parseVariantSelectors: key=value, repeated and comma-separated; bad syntax is a usage error', () => {
  assert.deepEqual(sel('quantization=Q8_0', 'format=gguf,paramSize=8B'), [
    { key: 'quantization', value: 'Q8_0' },
    { key: 'format', value: 'gguf' },
    { key: 'paramSize', value: '8B' },
  ]);
  assert.deepEqual(parseVariantSelectors(undefined), []);
  assert.deepEqual(sel(' precision = bf16 '), [{ key: 'precision', value: 'bf16' }]);
  for (const bad of ['quantization', '=Q8_0', 'quantization=']) {
    const e = err(() => sel(bad));
    assert.equal(e.exitCode, 2);
    assert.match(e.message, /--variant needs key=value/);
  }
});

test('selectVariant: short keys, case-insensitive keys and values, several keys combine', () => {
  assert.equal(selectVariant(index, sel('quantization=Q8_0'), 'r'), q8);
  assert.equal(selectVariant(index, sel('QUANTIZATION=q4_k_m'), 'r'), q4);
  assert.equal(selectVariant(index, sel('format=SafeTensors'), 'r'), st);
  assert.equal(selectVariant(index, sel('param-size=8b', 'quantization=q8_0'), 'r'), q8);
  assert.equal(selectVariant(index, sel('param_size=8B', 'precision=BFLOAT16'), 'r'), st);
});

test('selectVariant: any annotation key, full or after the variant prefix; digest by full value or long prefix', () => {
  assert.equal(selectVariant(index, sel('com.example.tier=GOLD'), 'r'), st);
  assert.equal(selectVariant(index, sel(`${ANN_VARIANT_QUANTIZATION}=Q8_0`), 'r'), q8);
  assert.equal(selectVariant(index, sel(`digest=sha256:${hex('b')}`), 'r'), q8);
  assert.equal(selectVariant(index, sel(`digest=${hex('a').slice(0, 12)}`), 'r'), q4);
  assert.equal(err(() => selectVariant(index, sel('digest=aaaa'), 'r')).code, 'E_VARIANT_NOT_FOUND', 'short prefixes do not match');
});

test('selectVariant: no match and several matches are errors listing the variants', () => {
  const none = err(() => selectVariant(index, sel('quantization=Q5_0'), 'reg/m:v1'));
  assert.equal(none.code, 'E_VARIANT_NOT_FOUND');
  assert.match(none.message, /no variant of reg\/m:v1 matches quantization=Q5_0/);
  assert.match(none.message, /quantization=Q4_K_M format=gguf paramSize=8B/);
  assert.match(none.message, /quantization=Q8_0/);
  assert.match(none.message, /format=safetensors/);
  const many = err(() => selectVariant(index, sel('format=gguf'), 'reg/m:v1'));
  assert.equal(many.code, 'E_VARIANT_AMBIGUOUS');
  assert.match(many.message, /2 variants of reg\/m:v1 match format=gguf/);
  assert.match(many.message, /Q4_K_M[\s\S]*Q8_0/);
  assert.doesNotMatch(many.message, /safetensors/);
  assert.match(many.hint ?? '', /another --variant/);
});

test('selectVariant without selectors: one entry is used, several are an error naming them', () => {
  assert.equal(selectVariant({ manifests: [q4] }, [], 'r'), q4);
  const e = err(() => selectVariant(index, [], 'reg/m:v1'));
  assert.equal(e.code, 'E_IS_INDEX');
  assert.match(e.message, /image index with 3 variants; pick one with --variant/);
  assert.match(e.message, /Q4_K_M[\s\S]*Q8_0[\s\S]*safetensors/);
  assert.match(e.hint ?? '', /--variant quantization=Q4_K_M/);
  assert.equal(err(() => selectVariant({ manifests: [] }, [], 'r')).code, 'E_INDEX_EMPTY');
  // BuildKit attestation manifests are not variants
  const att = entry('d', { 'vnd.docker.reference.type': 'attestation-manifest' });
  assert.equal(selectVariant({ manifests: [q4, att] }, [], 'r'), q4);
});

test('variantAnnotations and describeVariant', () => {
  assert.deepEqual(variantAnnotations({ quantization: 'Q4_K_M', modelFormat: 'gguf', paramSize: '8B', precision: '' }), {
    [ANN_VARIANT_QUANTIZATION]: 'Q4_K_M',
    [ANN_VARIANT_FORMAT]: 'gguf',
    [ANN_VARIANT_PARAM_SIZE]: '8B',
  });
  assert.deepEqual(variantAnnotations({}), {});
  assert.equal(describeVariant(st), 'format=safetensors paramSize=8B precision=bfloat16 com.example.tier=gold');
  assert.equal(describeVariant({ mediaType: OCI, digest: 'sha256:' + hex('e'), size: 1 }), '(no variant annotations)');
});

test('buildVariantIndex: OCI index with artifactType on the index and entries; duplicates refused or warned', () => {
  const a = { descriptor: { mediaType: OCI, digest: q4.digest, size: 500, artifactType: 'application/vnd.cncf.model.manifest.v1+json' }, annotations: q4.annotations!, name: 'm:q4' };
  const b = { descriptor: { mediaType: OCI, digest: q8.digest, size: 501 }, annotations: q8.annotations!, name: 'm:q8' };
  const idx = buildVariantIndex([a, b], 'application/vnd.cncf.model.manifest.v1+json');
  assert.deepEqual(idx, {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    artifactType: 'application/vnd.cncf.model.manifest.v1+json',
    manifests: [
      { mediaType: OCI, digest: q4.digest, size: 500, artifactType: 'application/vnd.cncf.model.manifest.v1+json', annotations: q4.annotations },
      { mediaType: OCI, digest: q8.digest, size: 501, annotations: q8.annotations },
    ],
  });
  assert.match(err(() => buildVariantIndex([a, { ...a, name: 'm:again' }], undefined)).message, /same manifest/);
  assert.equal(err(() => buildVariantIndex([], undefined)).exitCode, 2);
  const warnings: string[] = [];
  buildVariantIndex([a, { ...b, annotations: a.annotations }], undefined, (m) => warnings.push(m));
  assert.match(warnings.join('\n'), /m:q4 and m:q8 have the same variant annotations/);
});
