import { test } from 'node:test';
import assert from 'node:assert/strict';
import { detectFormat } from '../../../src/formats/detect.js';
import * as d from './dialects.js';

test('every dialect is recognised from its manifest', () => {
  const table: Array<[string, unknown, string]> = [
    ['modctl (cncf)', d.modelpack.manifest, 'modelpack'],
    ['modctl v0.2.2 (cnai)', d.modelpackLegacy.manifest, 'modelpack-legacy'],
    ['docker v0.1 gguf', d.dockerGguf.manifest, 'docker'],
    ['docker v0.1 old', d.dockerGgufOld.manifest, 'docker'],
    ['docker v0.2 safetensors', d.dockerSafetensors.manifest, 'docker'],
    ['kitops', d.kitops.manifest, 'kitops'],
    ['kitops without artifactType', d.kitopsOld.manifest, 'kitops'],
    ['kitops --use-model-pack', d.kitopsModelPack.manifest, 'modelpack'],
    ['oras', d.oras.manifest, 'oras'],
    ['ollama', d.ollama.manifest, 'ollama'],
    ['container image', d.unknownImage.manifest, 'unknown'],
  ];
  for (const [what, manifest, format] of table) assert.equal(detectFormat(manifest), format, what);
});

test('detection order and edge cases', () => {
  const base = d.modelpack.manifest;
  // No artifactType (registries without image-spec v1.1): the config type decides.
  const { artifactType: _a, ...noArtifactType } = base;
  assert.equal(detectFormat(noArtifactType), 'modelpack');
  assert.equal(detectFormat({ ...noArtifactType, config: { ...base.config, mediaType: 'application/vnd.cnai.model.config.v1+json' } }), 'modelpack-legacy');
  // A KitOps index.
  assert.equal(detectFormat({ schemaVersion: 2, artifactType: 'application/vnd.kitops.modelkit.index.v1+json', manifests: [] }), 'kitops');
  // KitOps wins over a titled layer; Docker wins over ModelPack-annotated layers.
  assert.equal(detectFormat({ ...d.kitops.manifest, layers: [{ mediaType: 'x', digest: 'sha256:0', size: 0, annotations: { 'org.opencontainers.image.title': 't' } }] }), 'kitops');
  // Ollama needs the Docker schema2 type, from the body or the served Content-Type.
  const { mediaType: _m, ...ollamaNoType } = d.ollama.manifest;
  assert.equal(detectFormat(ollamaNoType, 'application/vnd.docker.distribution.manifest.v2+json'), 'ollama');
  assert.equal(detectFormat(ollamaNoType), 'ollama');
  assert.equal(detectFormat({ ...d.ollama.manifest, mediaType: 'application/vnd.oci.image.manifest.v1+json' }), 'unknown');
  // A ModelPack manifest whose layers also carry titles (we write both) stays ModelPack.
  assert.equal(detectFormat({ ...base, layers: [{ ...base.layers[0], annotations: { 'org.opencontainers.image.title': 'config.json' } }] }), 'modelpack');
  // Garbage.
  for (const bad of [null, undefined, 'text', 42, [], {}]) assert.equal(detectFormat(bad), 'unknown');
  assert.equal(detectFormat({ layers: 'nope', config: null }), 'unknown');
});
