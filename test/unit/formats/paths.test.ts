import { test } from 'node:test';
import assert from 'node:assert/strict';
import { detectFormat } from '../../../src/formats/detect.js';
import { layerOutputs, normalizeSummary, type LayerOutput } from '../../../src/formats/paths.js';
import { ModctlError } from '../../../src/errors.js';
import * as d from './dialects.js';

/** Outputs without the descriptor, for compact comparison. */
function brief(outs: LayerOutput[]): Array<Record<string, unknown>> {
  return outs.map(({ layer: _layer, ...rest }) => rest);
}

function outputsOf(x: { manifest: any; config: any }): LayerOutput[] {
  return layerOutputs(detectFormat(x.manifest), x.manifest, x.config);
}

test('ModelPack: filepath annotation (title fallback), tar layers unpack at the root, hostile paths passed through', () => {
  const outs = outputsOf(d.modelpack);
  assert.equal(outs.length, d.modelpack.manifest.layers.length);
  assert.equal(outs[0].layer, d.modelpack.manifest.layers[0], 'the descriptor itself is returned');
  assert.deepEqual(brief(outs), [
    { path: 'config.json', encoding: 'raw', role: 'weight.config' },
    { path: 'model-00001-of-00002.safetensors', encoding: 'raw', role: 'weight' },
    { path: 'sub dir/model-00002-of-00002.safetensors', encoding: 'raw', role: 'weight' },
    { encoding: 'tar', unpack: true, role: 'code' },
    { encoding: 'tar+zstd', unpack: true, role: 'doc' },
    { path: '../../etc/cron.d/evil', encoding: 'raw', role: 'weight' },
    { path: 'data.parquet', encoding: 'raw', role: 'dataset' },
  ]);
  assert.deepEqual(brief(outputsOf(d.modelpackLegacy)), [
    { path: 'model.gguf', encoding: 'raw', role: 'weight' },
    { path: 'README.md', encoding: 'raw', role: 'doc' },
  ]);
  assert.deepEqual(brief(outputsOf(d.kitopsModelPack)), [{ encoding: 'tar', unpack: true, role: 'weight' }]);
});

test('Docker v0.1: fixed bundle names; shards and repeated licenses keep or get numbered names', () => {
  assert.deepEqual(brief(outputsOf(d.dockerGguf)), [
    { path: 'model.gguf', encoding: 'raw', role: 'gguf' },
    { path: 'LICENSE', encoding: 'raw', role: 'license' },
    { path: 'model.mmproj', encoding: 'raw', role: 'mmproj' },
    { path: 'template.jinja', encoding: 'raw', role: 'chat-template' },
  ]);
  assert.deepEqual(brief(outputsOf(d.dockerGgufOld)), [
    { path: 'model-00001-of-00002.gguf', encoding: 'raw', role: 'gguf' },
    { path: 'model-00002-of-00002.gguf', encoding: 'raw', role: 'gguf' },
    { path: 'LICENSE-1', encoding: 'raw', role: 'license' },
    { path: 'LICENSE-2', encoding: 'raw', role: 'license' },
    { path: 'adapter.gguf', encoding: 'raw', role: 'lora' },
  ]);
  // Annotated shards keep their names.
  const annotated = {
    ...d.dockerGgufOld.manifest,
    layers: d.dockerGgufOld.manifest.layers.slice(0, 2).map((l, i) => ({ ...l, annotations: { 'org.cncf.model.filepath': `q-0000${i + 1}-of-00002.gguf` } })),
  };
  assert.deepEqual(layerOutputs('docker', annotated).map((o) => o.path), ['q-00001-of-00002.gguf', 'q-00002-of-00002.gguf']);
});

test('Docker v0.2: filepath annotations, dir tar into the parent, vLLM config tar at the root', () => {
  assert.deepEqual(brief(outputsOf(d.dockerSafetensors)), [
    { path: 'model-00001-of-00002.safetensors', encoding: 'raw', role: 'safetensors' },
    { path: 'model-00002-of-00002.safetensors', encoding: 'raw', role: 'safetensors' },
    { path: 'config.json', encoding: 'raw', role: 'file' },
    { path: 'tokenizer/tokenizer.json', encoding: 'raw', role: 'file' },
    { path: 'chat_template.jinja', encoding: 'raw', role: 'chat-template' },
    { path: 'LICENSE', encoding: 'raw', role: 'license' },
    { path: '/etc/shadow', encoding: 'raw', role: 'file' },
    { path: 'assets', encoding: 'tar', unpack: true, role: 'dir' },
    { encoding: 'tar', unpack: true, role: 'vllm-config' },
  ]);
  // `--format cncf` layers inside a Docker-config manifest fall back to ModelPack rules.
  const mixed = { ...d.dockerSafetensors.manifest, layers: [{ mediaType: 'application/vnd.cncf.model.weight.v1.gguf', digest: d.dg('g'), size: 1, annotations: { 'org.cncf.model.filepath': 'm.gguf' } }] };
  assert.deepEqual(brief(layerOutputs('docker', mixed)), [{ path: 'm.gguf', encoding: 'raw', role: 'weight' }]);
});

test('KitOps: paths from the Kitfile by order within each layer type; legacy tars unpack into dirname(path)', () => {
  assert.deepEqual(brief(outputsOf(d.kitops)), [
    { encoding: 'tar', unpack: true, role: 'model' },
    { encoding: 'tar', unpack: true, role: 'model.parts[0]' },
    { encoding: 'tar', unpack: true, role: 'code[0]' },
    { encoding: 'tar', unpack: true, role: 'prompts[0]' },
    { encoding: 'tar+gzip', unpack: true, role: 'datasets[0]' },
    { path: 'README.md', encoding: 'raw', role: 'docs[0]' },
    { encoding: 'tar+zstd', unpack: true, role: 'docs[1]' },
    { path: '../escape.txt', encoding: 'raw', role: 'docs[2]' },
  ]);
  assert.deepEqual(brief(outputsOf(d.kitopsOld)), [
    { path: 'models/deep', encoding: 'tar+gzip', unpack: true, role: 'model' },
    { encoding: 'tar', unpack: true, role: 'code[0]' },
    { path: 'data/set', encoding: 'tar', unpack: true, role: 'datasets[0]' },
  ]);
  // The Kitfile may come from the manifest annotation when the config is not at hand.
  const annotated = { ...d.kitopsOld.manifest, annotations: { 'ml.kitops.modelkit.kitfile': d.kitopsOld.config } };
  assert.equal(layerOutputs('kitops', annotated, undefined)[0].path, 'models/deep');
  // Raw layers without a Kitfile entry fall back to the filepath annotation.
  assert.equal(layerOutputs('kitops', d.kitops.manifest, {})[5].path, 'README.md');
});

test('KitOps: a layer whose Kitfile entry names another digest is rejected', () => {
  const cfg = structuredClone(d.kitops.config);
  cfg.docs[0].digest = d.dg('something else');
  assert.throws(() => layerOutputs('kitops', d.kitops.manifest, cfg), (e: unknown) => e instanceof ModctlError && e.code === 'E_KITOPS_MISMATCH' && /docs\[0\]/.test(e.message));
});

test('ORAS: titles name files; unpack directories are tar+gzip under their title; untitled layers have no path', () => {
  assert.deepEqual(brief(outputsOf(d.oras)), [
    { path: 'model.gguf', encoding: 'raw', role: 'file' },
    { path: 'weights', encoding: 'tar+gzip', unpack: true, stripPrefix: 'weights', contentDigest: d.dg('oras-dir-tar'), role: 'directory' },
    { path: 'notes.txt', encoding: 'raw', role: 'file' },
    { encoding: 'raw', role: 'file' },
    { path: '../../evil', encoding: 'raw', role: 'file' },
  ]);
});

test('Ollama: files named by role, numbered when repeated, `name` for tensor/json layers', () => {
  assert.deepEqual(
    outputsOf(d.ollama).map((o) => [o.role, o.path, o.encoding]),
    [
      ['model', 'model.gguf', 'raw'],
      ['projector', 'projector.gguf', 'raw'],
      ['template', 'template', 'raw'],
      ['license', 'license-1', 'raw'],
      ['license', 'license-2', 'raw'],
      ['params', 'params.json', 'raw'],
      ['system', 'system', 'raw'],
      ['messages', 'messages.json', 'raw'],
      ['adapter', 'adapter.gguf', 'raw'],
      ['tensor', 'blk.0.attn_q.weight', 'raw'],
      ['json', '../config.json', 'raw'],
    ],
  );
  const twoModels = { ...d.ollama.manifest, layers: [d.ollama.manifest.layers[0], { ...d.ollama.manifest.layers[0], digest: d.dg('m2') }] };
  assert.deepEqual(layerOutputs('ollama', twoModels).map((o) => o.path), ['model-1.gguf', 'model-2.gguf']);
});

test('normalizeSummary gives one shape for every dialect', () => {
  const sum = (x: { manifest: any; config: any }) => normalizeSummary(detectFormat(x.manifest), x.manifest, x.config);

  const mp = sum(d.modelpack);
  assert.deepEqual({ ...mp, files: mp.files.slice(0, 2) }, {
    format: 'modelpack',
    name: 'qwen2-0.5b-instruct',
    family: 'qwen2',
    architecture: 'transformer',
    paramSize: '0.5B',
    quantization: 'awq',
    precision: 'bfloat16',
    modelFormat: 'safetensors',
    files: [
      { path: 'config.json', size: 700, mediaType: 'application/vnd.cncf.model.weight.config.v1.raw' },
      { path: 'model-00001-of-00002.safetensors', size: 5000, mediaType: 'application/vnd.cncf.model.weight.v1.raw' },
    ],
  });
  assert.equal(mp.files[3].path, 'scripts', 'tar layers are listed by their annotated path');
  assert.equal(mp.files[4].path, d.modelpack.manifest.layers[4].digest, 'unnamed layers are listed by digest');

  assert.deepEqual(sum(d.modelpackLegacy), {
    format: 'modelpack-legacy',
    name: 'legacy',
    family: 'llama',
    paramSize: '8B',
    quantization: 'Q4_K_M',
    modelFormat: 'gguf',
    files: [
      { path: 'model.gguf', size: 9000, mediaType: 'application/vnd.cnai.model.weight.v1.raw' },
      { path: 'README.md', size: 90, mediaType: 'application/vnd.cnai.model.doc.v1.raw' },
    ],
  });

  const dg = sum(d.dockerGguf);
  assert.deepEqual({ ...dg, files: dg.files.map((f) => f.path) }, {
    format: 'docker',
    name: 'Qwen2 0.5B Instruct',
    architecture: 'qwen2',
    paramSize: '494.03M',
    quantization: 'Q4_K_M',
    modelFormat: 'gguf',
    contextLength: 32768,
    files: ['model.gguf', 'LICENSE', 'model.mmproj', 'template.jinja'],
  });
  const ds = sum(d.dockerSafetensors);
  assert.equal(ds.architecture, undefined, 'empty strings are dropped');
  assert.equal(ds.quantization, 'BF16');

  const kit = sum(d.kitops);
  assert.deepEqual({ ...kit, files: kit.files.map((f) => f.path) }, {
    format: 'kitops',
    name: 'qwen-kit',
    modelFormat: 'gguf',
    files: ['models/qwen2.gguf', 'models/tokenizer', 'src', 'prompts/system.md', 'data/train.csv', 'README.md', 'docs/', '../escape.txt'],
  });
  assert.deepEqual({ ...sum(d.kitopsOld), files: [] }, { format: 'kitops', name: 'old-kit', modelFormat: 'onnx', files: [] });

  const ol = sum(d.ollama);
  assert.deepEqual({ ...ol, files: ol.files.slice(0, 1) }, {
    format: 'ollama',
    family: 'llama',
    paramSize: '8.0B',
    quantization: 'Q4_K_M',
    modelFormat: 'gguf',
    contextLength: 131072,
    files: [{ path: 'model.gguf', size: 4_920_734_272, mediaType: 'application/vnd.ollama.image.model' }],
  });
  assert.equal(ol.architecture, undefined, "Ollama's architecture is the CPU's, not the model's");

  const orasSum = sum(d.oras);
  assert.deepEqual(orasSum.files.map((f) => f.path), ['model.gguf', 'weights', 'notes.txt', d.dg('oras-untitled'), '../../evil']);
  assert.deepEqual(Object.keys(orasSum), ['format', 'files']);

  assert.deepEqual(sum(d.unknownImage), {
    format: 'unknown',
    files: [{ path: d.dg('img-layer'), size: 30_000_000, mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' }],
  });
  // A config given as raw JSON text works too.
  assert.equal(normalizeSummary('modelpack', d.modelpack.manifest, JSON.stringify(d.modelpack.config)).name, 'qwen2-0.5b-instruct');
});
