import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  dtypePrecision,
  formatParamSize,
  ggufFileTypeName,
  groupShards,
  inferWeightsMetadata,
  parseShardName,
} from '../../../src/weights/infer.js';
import { ModctlError } from '../../../src/errors.js';
import { tmpDir } from '../../support/tmp.js';
import { arr, qwenKv, str, u32, writeGguf, writeSafetensors } from './fixtures.js';

const root = tmpDir('modctl-infer-');
let n = 0;
function sub(): string {
  const d = path.join(root, `case${n++}`);
  mkdirSync(d, { recursive: true });
  return d;
}

test('paramSize formatting: ≤ 1 decimal, K/M/B/T, no trailing .0', () => {
  const table: Array<[number, string]> = [
    [494_000_000, '494M'],
    [8_030_000_000, '8B'],
    [1_543_000_000, '1.5B'],
    [7_000, '7K'],
    [999, '999'],
    [0, '0'],
    [1_000, '1K'],
    [1_049_000, '1M'],
    [1_050_000, '1.1M'],
    [494_032_768, '494M'],
    [7_241_732_096, '7.2B'],
    [999_960_000, '1B'],
    [999_949_999, '999.9M'],
    [70_553_706_496, '70.6B'],
    [671_000_000_000, '671B'],
    [1_200_000_000_000, '1.2T'],
  ];
  for (const [count, expected] of table) assert.equal(formatParamSize(count), expected, String(count));
  assert.throws(() => formatParamSize(-1), RangeError);
  assert.throws(() => formatParamSize(Number.NaN), RangeError);
});

test('GGUF file types follow llama.cpp LLAMA_FTYPE', () => {
  const table: Array<[unknown, string | undefined]> = [
    [0, 'F32'], [1, 'F16'], [2, 'Q4_0'], [7, 'Q8_0'], [10, 'Q2_K'], [12, 'Q3_K_M'], [15, 'Q4_K_M'], [17, 'Q5_K_M'],
    [18, 'Q6_K'], [30, 'IQ4_XS'], [32, 'BF16'], [38, 'MXFP4_MOE'], [1024, undefined], [99, undefined], ['15', undefined],
  ];
  for (const [ft, name] of table) assert.equal(ggufFileTypeName(ft), name, String(ft));
});

test('safetensors dtypes map to precision names', () => {
  const table: Array<[string, string]> = [
    ['F16', 'float16'], ['BF16', 'bfloat16'], ['F32', 'float32'], ['F64', 'float64'], ['F8_E4M3', 'float8_e4m3'],
    ['F8_E5M2', 'float8_e5m2'], ['I8', 'int8'], ['U8', 'uint8'], ['I32', 'int32'], ['I64', 'int64'], ['BOOL', 'bool'],
    ['F4', 'float4_e2m1'], ['NEW_TYPE', 'new_type'],
  ];
  for (const [dtype, name] of table) assert.equal(dtypePrecision(dtype), name, dtype);
});

test('shard names and grouping', () => {
  assert.deepEqual(parseShardName('qwen2-q4_k_m-00001-of-00002.gguf'), { prefix: 'qwen2-q4_k_m', index: 1, total: 2, ext: 'gguf' });
  assert.deepEqual(parseShardName('model-00002-of-00002.safetensors'), { prefix: 'model', index: 2, total: 2, ext: 'safetensors' });
  assert.equal(parseShardName('model.safetensors'), undefined);
  assert.equal(parseShardName('model-00003-of-00002.safetensors'), undefined);
  assert.deepEqual(
    groupShards(['/m/b-00002-of-00002.gguf', '/m/a.gguf', '/m/b-00001-of-00002.gguf', '/n/b-00001-of-00002.gguf']),
    [['/m/a.gguf'], ['/m/b-00001-of-00002.gguf', '/m/b-00002-of-00002.gguf'], ['/n/b-00001-of-00002.gguf']],
  );
});

test('sharded GGUF: metadata from the first shard, parameters summed over shards', async () => {
  const d = sub();
  const s1 = path.join(d, 'qwen2-q4_k_m-00001-of-00002.gguf');
  const s2 = path.join(d, 'qwen2-q4_k_m-00002-of-00002.gguf');
  writeGguf(s1, {
    kv: qwenKv(15, [['split.no', { type: 'u16', value: 0 }], ['split.count', { type: 'u16', value: 2 }]]),
    tensors: [{ name: 'token_embd.weight', shape: [896, 1000], type: 12 }],
  });
  writeGguf(s2, {
    kv: [['split.no', { type: 'u16', value: 1 }], ['split.count', { type: 'u16', value: 2 }], ['general.architecture', str('other')]],
    tensors: [{ name: 'output.weight', shape: [896, 1000], type: 12 }, { name: 'output_norm.weight', shape: [896], type: 0 }],
  });
  // Passed in reverse order on purpose.
  const meta = await inferWeightsMetadata([s2, s1]);
  assert.equal(meta.format, 'gguf');
  assert.equal(meta.architecture, 'qwen2');
  assert.equal(meta.family, 'qwen2');
  assert.equal(meta.name, 'Qwen2 0.5B Instruct');
  assert.equal(meta.quantization, 'Q4_K_M');
  assert.equal(meta.precision, undefined, 'a quantized GGUF has no single precision');
  assert.equal(meta.contextLength, 32768);
  assert.equal(meta.paramCount, 896 * 1000 * 2 + 896);
  assert.equal(meta.paramSize, '1.8M');
  assert.deepEqual(meta.files, [s1, s2]);
  assert.deepEqual(meta.warnings, []);
  const kv = meta.ggufKv ?? {};
  assert.equal(kv['general.architecture'], 'qwen2');
  assert.equal(kv['general.file_type'], '15');
  assert.equal(kv['qwen2.attention.layer_norm_rms_epsilon'], '0.000001', 'float32 printed in its shortest form');
  assert.equal(kv['split.count'], '2');
  assert.equal(kv['tokenizer.ggml.tokens'], undefined, 'arrays over 50 entries are dropped');
});

test('GGUF: short arrays joined, F16 file gives precision, projectors ignored, quant variants listed', async () => {
  const d = sub();
  const q4 = path.join(d, 'm-Q4_K_M.gguf');
  const q8 = path.join(d, 'm-Q8_0.gguf');
  const proj = path.join(d, 'mmproj-m-f16.gguf');
  const f16 = path.join(d, 'm-f16.gguf');
  const tensors = [{ name: 'w', shape: [10, 10] }];
  writeGguf(q4, { kv: qwenKv(15, [['general.tags', arr('str', ['chat', 'qwen'])]]), tensors });
  writeGguf(q8, { kv: qwenKv(7), tensors });
  writeGguf(proj, { kv: [['general.architecture', str('clip')], ['general.file_type', u32(1)]], tensors: [{ name: 'v', shape: [5] }] });
  writeGguf(f16, { kv: qwenKv(1), tensors });

  const single = await inferWeightsMetadata([f16, proj]);
  assert.equal(single.quantization, 'F16');
  assert.equal(single.precision, 'float16');
  assert.equal(single.architecture, 'qwen2', 'the mmproj projector is not the model');
  assert.deepEqual(single.files, [f16]);

  const both = await inferWeightsMetadata([q8, q4, proj]);
  assert.equal(both.quantization, 'Q4_K_M,Q8_0');
  assert.equal(both.paramCount, 100, 'equal counts are kept');
  assert.equal(both.architecture, 'qwen2');
  assert.match(both.warnings.join('\n'), /found 2 separate GGUF models/);
  assert.equal(both.ggufKv?.['general.tags'], 'chat, qwen');
});

test('incomplete GGUF shard sets and unreadable files become warnings (errors with strict)', async () => {
  const d = sub();
  const s1 = path.join(d, 'x-00001-of-00003.gguf');
  writeGguf(s1, { kv: qwenKv(15), tensors: [{ name: 'w', shape: [4] }] });
  const meta = await inferWeightsMetadata([s1]);
  assert.equal(meta.paramCount, 4);
  assert.match(meta.warnings.join('\n'), /incomplete shard set for x: found 1 of 3 shards/);

  const bad = path.join(d, 'bad.gguf');
  writeFileSync(bad, 'version https://git-lfs.github.com/spec/v1\n');
  const lenient = await inferWeightsMetadata([bad]);
  assert.equal(lenient.format, 'gguf');
  assert.equal(lenient.quantization, undefined);
  assert.match(lenient.warnings.join('\n'), /cannot read GGUF header of bad\.gguf: .*bad magic/);
  await assert.rejects(inferWeightsMetadata([bad], { strict: true }), (e: unknown) => e instanceof ModctlError && e.code === 'E_GGUF_INVALID');
});

test('sharded safetensors: parameters summed, dtypes by parameter majority, metadata from the first shard', async () => {
  const d = sub();
  const s1 = path.join(d, 'model-00001-of-00002.safetensors');
  const s2 = path.join(d, 'model-00002-of-00002.safetensors');
  writeSafetensors(s1, {
    metadata: { format: 'pt', architecture: 'Qwen2ForCausalLM' },
    tensors: { 'embed.weight': { dtype: 'BF16', shape: [100, 64] }, 'norm.weight': { dtype: 'F32', shape: [64] } },
  });
  writeSafetensors(s2, {
    metadata: { format: 'pt', other: 'x' },
    tensors: { 'lm_head.weight': { dtype: 'BF16', shape: [100, 64] }, 'n2.weight': { dtype: 'F32', shape: [64] }, 'n3.weight': { dtype: 'F32', shape: [64] } },
  });
  const meta = await inferWeightsMetadata([s2, s1, path.join(d, 'README.md')]);
  assert.equal(meta.format, 'safetensors');
  assert.equal(meta.paramCount, 2 * 6400 + 3 * 64);
  assert.equal(meta.paramSize, '13K');
  assert.deepEqual(meta.dtypes, ['BF16', 'F32'], 'BF16 holds most parameters although F32 has more tensors');
  assert.equal(meta.precision, 'bfloat16,float32');
  assert.equal(meta.architecture, 'Qwen2ForCausalLM');
  assert.deepEqual(meta.safetensorsKv, { format: 'pt', architecture: 'Qwen2ForCausalLM', tensor_count: '5' });
  assert.deepEqual(meta.files, [s1, s2]);
  assert.equal(meta.quantization, undefined);
});

test('safetensors: a copy of the same weights is counted once; a large sparse model gives a B size', async () => {
  const d = sub();
  const tensors = { w: { dtype: 'F16', shape: [10, 10] } };
  writeSafetensors(path.join(d, 'consolidated.safetensors'), { tensors });
  writeSafetensors(path.join(d, 'model.safetensors'), { tensors: { 'model.w': { dtype: 'F16', shape: [10, 10] } } });
  const meta = await inferWeightsMetadata([path.join(d, 'model.safetensors'), path.join(d, 'consolidated.safetensors')]);
  assert.equal(meta.paramCount, 100);
  assert.match(meta.warnings.join('\n'), /model\.safetensors repeats the parameters of consolidated\.safetensors; counted once/);

  const big = path.join(d, 'big.safetensors');
  writeSafetensors(big, { tensors: { w: { dtype: 'I8', shape: [1000, 1_543_000] } } });
  const bigMeta = await inferWeightsMetadata([big]);
  assert.equal(bigMeta.paramCount, 1_543_000_000);
  assert.equal(bigMeta.paramSize, '1.5B');
  assert.equal(bigMeta.precision, 'int8');
});

test('config.json adds family, context length, quantization method and a precision fallback', async () => {
  const d = sub();
  const st = path.join(d, 'model.safetensors');
  writeSafetensors(st, { tensors: { w: { dtype: 'F8_E4M3', shape: [8, 8] }, s: { dtype: 'F32', shape: [1] } } });
  const meta = await inferWeightsMetadata([st], {
    configJson: { model_type: 'llama', max_position_embeddings: 131072, torch_dtype: 'bfloat16', quantization_config: { quant_method: 'fp8' } },
  });
  assert.equal(meta.family, 'llama');
  assert.equal(meta.contextLength, 131072);
  assert.equal(meta.quantization, 'fp8');
  assert.equal(meta.precision, 'float8_e4m3,float32', 'header dtypes win over torch_dtype');

  const nested = await inferWeightsMetadata([path.join(d, 'pytorch_model.bin')], { configJson: { text_config: { max_position_embeddings: 8192 }, torch_dtype: 'float16' } });
  assert.equal(nested.format, 'pytorch');
  assert.equal(nested.contextLength, 8192);
  assert.equal(nested.precision, 'float16');
});

test('format priority: safetensors over pytorch copies; nothing recognised → no format', async () => {
  const d = sub();
  writeSafetensors(path.join(d, 'model.safetensors'), { tensors: { w: { dtype: 'F32', shape: [2] } } });
  const meta = await inferWeightsMetadata([path.join(d, 'pytorch_model.bin'), path.join(d, 'model.safetensors'), path.join(d, 'model.onnx')]);
  assert.equal(meta.format, 'safetensors');
  const none = await inferWeightsMetadata([path.join(d, 'weights.dat')]);
  assert.equal(none.format, undefined);
  assert.deepEqual(none.files, []);
});
