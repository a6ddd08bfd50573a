import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  dockerConfigFor,
  dockerLayerMediaType,
  formatDockerParameters,
  formatDockerSize,
  MT_DOCKER_CHAT_TEMPLATE,
  MT_DOCKER_DDUF,
  MT_DOCKER_FILE,
  MT_DOCKER_GGUF,
  MT_DOCKER_LICENSE,
  MT_DOCKER_MMPROJ,
  MT_DOCKER_SAFETENSORS,
} from '../../../src/formats/docker.js';
import { detectFormat } from '../../../src/formats/detect.js';
import { layerOutputs } from '../../../src/formats/paths.js';
import type { WeightsMetadata } from '../../../src/weights/infer.js';
import { dg } from './dialects.js';

test('layer media types by file name (§2.4)', () => {
  const table: Array<[string, boolean, string]> = [
    ['model-00001-of-00002.safetensors', false, MT_DOCKER_SAFETENSORS],
    ['sub/Model.SafeTensors', false, MT_DOCKER_SAFETENSORS],
    ['qwen2-q4_k_m.gguf', true, MT_DOCKER_GGUF],
    ['mmproj-qwen2-f16.gguf', true, MT_DOCKER_MMPROJ],
    ['mmproj-qwen2-f16.gguf', false, MT_DOCKER_GGUF],
    ['pipeline.dduf', false, MT_DOCKER_DDUF],
    ['template.jinja', true, MT_DOCKER_CHAT_TEMPLATE],
    ['chat_template.json', false, MT_DOCKER_CHAT_TEMPLATE],
    ['LICENSE', true, MT_DOCKER_LICENSE],
    ['LICENCE.txt', false, MT_DOCKER_LICENSE],
    ['COPYING', false, MT_DOCKER_LICENSE],
    ['NOTICE.md', false, MT_DOCKER_LICENSE],
    ['config.json', false, MT_DOCKER_FILE],
    ['tokenizer/merges.txt', false, MT_DOCKER_FILE],
    ['README.md', false, MT_DOCKER_FILE],
  ];
  for (const [file, gguf, mt] of table) assert.equal(dockerLayerMediaType(file, gguf), mt, file);
});

test('human forms: parameters with two decimals, IEC sizes', () => {
  assert.equal(formatDockerParameters(8_030_261_248), '8.03B');
  assert.equal(formatDockerParameters(494_032_768), '494.03M');
  assert.equal(formatDockerParameters(999_999_999), '1.00B');
  assert.equal(formatDockerParameters(12_864), '12.86K');
  assert.equal(formatDockerParameters(12), '12');
  assert.equal(formatDockerSize(Math.round(4.58 * 1024 ** 3)), '4.58GiB');
  assert.equal(formatDockerSize(397_000_000), '378.61MiB');
  assert.equal(formatDockerSize(1536), '1.50KiB');
  assert.equal(formatDockerSize(100), '100B');
});

const ggufMeta: WeightsMetadata = {
  format: 'gguf',
  architecture: 'qwen2',
  family: 'qwen2',
  paramCount: 494_032_768,
  paramSize: '494M',
  quantization: 'Q4_K_M',
  contextLength: 32768,
  ggufKv: { 'general.architecture': 'qwen2', 'general.file_type': '15', 'tokenizer.ggml.pre': 'qwen2' },
  files: [],
  warnings: [],
};

test('GGUF model → config v0.1 with Docker key order, gguf map and rootfs', () => {
  const files = [
    { path: 'q-00001-of-00002.gguf', size: 200_000_000, mediaType: MT_DOCKER_GGUF },
    { path: 'q-00002-of-00002.gguf', size: 197_000_000, mediaType: MT_DOCKER_GGUF },
    { path: 'LICENSE', size: 11_000, mediaType: MT_DOCKER_LICENSE },
  ];
  const diffIds = [dg('1'), dg('2'), dg('3')];
  const { mediaType, body } = dockerConfigFor({ files, meta: ggufMeta, created: '2025-05-01T00:00:00Z', diffIds });
  assert.equal(mediaType, 'application/vnd.docker.ai.model.config.v0.1+json');
  assert.equal(
    JSON.stringify(body),
    JSON.stringify({
      config: {
        format: 'gguf',
        quantization: 'Q4_K_M',
        parameters: '494.03M',
        architecture: 'qwen2',
        size: '378.61MiB',
        gguf: { 'general.architecture': 'qwen2', 'general.file_type': '15', 'tokenizer.ggml.pre': 'qwen2' },
        context_size: 32768,
      },
      descriptor: { created: '2025-05-01T00:00:00Z' },
      rootfs: { type: 'rootfs', diff_ids: diffIds },
    }),
  );
  body.rootfs.diff_ids.push('x');
  assert.equal(diffIds.length, 3, 'inputs are not aliased');

  // What we write reads back as Docker with the v0.1 bundle names.
  const manifest = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType, digest: dg('c'), size: 1 },
    layers: files.map((f, i) => ({ mediaType: f.mediaType, digest: diffIds[i], size: f.size, annotations: { 'org.cncf.model.filepath': f.path } })),
  };
  assert.equal(detectFormat(manifest), 'docker');
  assert.deepEqual(layerOutputs('docker', manifest).map((o) => o.path), ['q-00001-of-00002.gguf', 'q-00002-of-00002.gguf', 'LICENSE']);
});

test('safetensors model → config v0.2; quantization is the dtype, mixed or unknown; options override', () => {
  const meta: WeightsMetadata = {
    format: 'safetensors',
    paramCount: 8_030_261_248,
    dtypes: ['BF16'],
    precision: 'bfloat16',
    contextLength: 131072,
    safetensorsKv: { format: 'pt', tensor_count: '291' },
    files: [],
    warnings: [],
  };
  const files = [
    { path: 'model-00001-of-00002.safetensors', size: 5 * 1024 ** 3, mediaType: MT_DOCKER_SAFETENSORS },
    { path: 'model-00002-of-00002.safetensors', size: 1024 ** 3, mediaType: MT_DOCKER_SAFETENSORS },
    { path: 'config.json', size: 700, mediaType: MT_DOCKER_FILE },
  ];
  const { mediaType, body } = dockerConfigFor({ files, meta, diffIds: [] });
  assert.equal(mediaType, 'application/vnd.docker.ai.model.config.v0.2+json');
  assert.deepEqual(body, {
    config: { format: 'safetensors', quantization: 'BF16', parameters: '8.03B', size: '6.00GiB', safetensors: { format: 'pt', tensor_count: '291' }, context_size: 131072 },
    descriptor: {},
    rootfs: { type: 'rootfs', diff_ids: [] },
  });
  assert.equal(dockerConfigFor({ files, meta: { ...meta, dtypes: ['F8_E4M3', 'F32'] }, diffIds: [] }).body.config.quantization, 'mixed');
  assert.equal(dockerConfigFor({ files, meta: { ...meta, dtypes: undefined }, diffIds: [] }).body.config.quantization, 'unknown');
  assert.equal(dockerConfigFor({ files, meta, diffIds: [], contextSize: 4096 }).body.config.context_size, 4096);
  assert.equal(dockerConfigFor({ files, meta: { ...meta, contextLength: 2 ** 40 }, diffIds: [] }).body.config.context_size, undefined, 'beyond int32 is dropped');
  // No parameter count: the short size is used as is.
  assert.equal(dockerConfigFor({ files, meta: { ...meta, paramCount: undefined, paramSize: '8B' }, diffIds: [] }).body.config.parameters, '8B');
});
