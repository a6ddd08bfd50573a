/**
 * One representative manifest (+ config) per dialect, shaped the way each peer tool writes it
 * (peer-formats.md §2–§5, modelpack.md §1–§4). Digests are fake but well-formed.
 */

import { createHash } from 'node:crypto';

export const dg = (s: string): string => 'sha256:' + createHash('sha256').update(s).digest('hex');

const OCI = 'application/vnd.oci.image.manifest.v1+json';
const meta = (name: string, size: number, typeflag = 0) =>
  JSON.stringify({ name, mode: 420, uid: 0, gid: 0, size, mtime: '2025-01-01T00:00:00Z', typeflag });

function mpLayer(family: 'cncf' | 'cnai', kind: string, enc: string, file: string | undefined, size: number): Record<string, unknown> {
  const l: Record<string, unknown> = { mediaType: `application/vnd.${family}.model.${kind}.v1.${enc}`, digest: dg(`${family}:${file}:${kind}`), size };
  if (file !== undefined) {
    l.annotations = {
      [`org.${family}.model.filepath`]: file,
      [`org.${family}.model.file.metadata+json`]: meta(file.split('/').pop() as string, size),
      [`org.${family}.model.file.mediatype.untested`]: 'false',
    };
  }
  return l;
}

/** modctl v0.2 (`cncf`): raw layers with filepath annotations, one tar layer, one spec-example tar without annotations. */
export const modelpack = {
  manifest: {
    schemaVersion: 2,
    mediaType: OCI,
    artifactType: 'application/vnd.cncf.model.manifest.v1+json',
    config: { mediaType: 'application/vnd.cncf.model.config.v1+json', digest: dg('mp-config'), size: 400 },
    layers: [
      mpLayer('cncf', 'weight.config', 'raw', 'config.json', 700),
      mpLayer('cncf', 'weight', 'raw', 'model-00001-of-00002.safetensors', 5000),
      mpLayer('cncf', 'weight', 'raw', 'sub dir/model-00002-of-00002.safetensors', 4000),
      mpLayer('cncf', 'code', 'tar', 'scripts', 2048),
      mpLayer('cncf', 'doc', 'tar+zstd', undefined, 300),
      mpLayer('cncf', 'weight', 'raw', '../../etc/cron.d/evil', 10),
      { mediaType: 'application/vnd.cncf.model.dataset.v1.raw', digest: dg('titled'), size: 11, annotations: { 'org.opencontainers.image.title': 'data.parquet' } },
    ],
    annotations: { 'org.cncf.modctl.modelfile': 'NAME qwen2\nMODEL *.safetensors\n' },
  },
  config: {
    descriptor: { createdAt: '2025-07-21T10:04:05.123456789+08:00', family: 'qwen2', name: 'qwen2-0.5b-instruct' },
    modelfs: { type: 'layers', diffIds: [dg('a'), dg('b')] },
    config: { architecture: 'transformer', format: 'safetensors', paramSize: '0.5B', precision: 'bfloat16', quantization: 'awq' },
  },
};

/** modctl v0.2.2 compatibility build: `cnai` ids, camelCase config. */
export const modelpackLegacy = {
  manifest: {
    schemaVersion: 2,
    mediaType: OCI,
    artifactType: 'application/vnd.cnai.model.manifest.v1+json',
    config: { mediaType: 'application/vnd.cnai.model.config.v1+json', digest: dg('legacy-config'), size: 300 },
    layers: [mpLayer('cnai', 'weight', 'raw', 'model.gguf', 9000), mpLayer('cnai', 'doc', 'raw', 'README.md', 90)],
    annotations: { 'org.cnai.modctl.modelfile': 'MODEL model.gguf\n' },
  },
  config: {
    descriptor: { name: 'legacy', family: 'llama' },
    modelfs: { type: 'layers', diffIds: [dg('x')] },
    config: { format: 'gguf', paramSize: '8B', quantization: 'Q4_K_M' },
  },
};

function dockerLayer(mediaType: string, file: string | undefined, size: number): Record<string, unknown> {
  const l: Record<string, unknown> = { mediaType, digest: dg(`docker:${mediaType}:${file}`), size };
  if (file !== undefined) {
    l.annotations = {
      'org.cncf.model.filepath': file,
      'org.cncf.model.file.metadata+json': meta(file.split('/').pop() as string, size),
      'org.cncf.model.file.mediatype.untested': 'false',
    };
  }
  return l;
}

/** `docker model package --gguf … --license … --mmproj … --chat-template …`: config v0.1. */
export const dockerGguf = {
  manifest: {
    schemaVersion: 2,
    mediaType: OCI,
    config: { mediaType: 'application/vnd.docker.ai.model.config.v0.1+json', digest: dg('docker-config'), size: 900 },
    layers: [
      dockerLayer('application/vnd.docker.ai.gguf.v3', 'qwen2-0_5b-instruct-q4_k_m.gguf', 397_000_000),
      dockerLayer('application/vnd.docker.ai.license', 'LICENSE', 11_000),
      dockerLayer('application/vnd.docker.ai.mmproj', 'mmproj-qwen2-f16.gguf', 600_000),
      dockerLayer('application/vnd.docker.ai.chat.template.jinja', 'chat.jinja', 1_500),
    ],
  },
  config: {
    config: {
      format: 'gguf',
      quantization: 'Q4_K_M',
      parameters: '494.03M',
      architecture: 'qwen2',
      size: '378.61MiB',
      gguf: { 'general.architecture': 'qwen2', 'general.name': 'Qwen2 0.5B Instruct', 'general.file_type': '15', 'qwen2.context_length': '32768' },
      context_size: 32768,
    },
    descriptor: { created: '2025-05-01T00:00:00Z' },
    rootfs: { type: 'rootfs', diff_ids: [dg('1'), dg('2'), dg('3'), dg('4')] },
  },
};

/** An older Docker v0.1 artifact: sharded GGUF and two licenses, no filepath annotations. */
export const dockerGgufOld = {
  manifest: {
    schemaVersion: 2,
    mediaType: OCI,
    config: { mediaType: 'application/vnd.docker.ai.model.config.v0.1+json', digest: dg('docker-old-config'), size: 500 },
    layers: [
      dockerLayer('application/vnd.docker.ai.gguf.v3', undefined, 100),
      dockerLayer('application/vnd.docker.ai.gguf.v3', undefined, 101),
      dockerLayer('application/vnd.docker.ai.license', undefined, 10),
      { mediaType: 'application/vnd.docker.ai.license', digest: dg('lic2'), size: 12 },
      dockerLayer('application/vnd.docker.ai.gguf.v3.lora', undefined, 5),
    ],
  },
  config: { config: { format: 'gguf', parameters: '8.03B' }, descriptor: {}, rootfs: { type: 'rootfs', diff_ids: [] } },
};

/** `docker model package --safetensors-dir …`: config v0.2, one raw layer per file, plus a dir tar. */
export const dockerSafetensors = {
  manifest: {
    schemaVersion: 2,
    mediaType: OCI,
    config: { mediaType: 'application/vnd.docker.ai.model.config.v0.2+json', digest: dg('docker-st-config'), size: 700 },
    layers: [
      dockerLayer('application/vnd.docker.ai.safetensors', 'model-00001-of-00002.safetensors', 4_000),
      dockerLayer('application/vnd.docker.ai.safetensors', 'model-00002-of-00002.safetensors', 3_000),
      dockerLayer('application/vnd.docker.ai.model.file', 'config.json', 600),
      dockerLayer('application/vnd.docker.ai.model.file', 'tokenizer/tokenizer.json', 900),
      dockerLayer('application/vnd.docker.ai.chat.template.jinja', 'chat_template.jinja', 300),
      dockerLayer('application/vnd.docker.ai.license', 'LICENSE', 100),
      dockerLayer('application/vnd.docker.ai.model.file', '/etc/shadow', 1),
      dockerLayer('application/vnd.docker.ai.dir.tar', 'assets/images', 10_240),
      { mediaType: 'application/vnd.docker.ai.vllm.config.tar', digest: dg('vllm'), size: 2048 },
    ],
  },
  config: {
    config: { format: 'safetensors', quantization: 'BF16', parameters: '494.03M', architecture: '', size: '942.30MiB', safetensors: { tensor_count: '290' }, context_size: 32768 },
    descriptor: {},
    rootfs: { type: 'rootfs', diff_ids: [] },
  },
};

function kitLayer(base: string, fmt: string, path: string, size: number, extra: Record<string, string> = {}): Record<string, unknown> {
  return {
    mediaType: `application/vnd.kitops.modelkit.${base}.v1.${fmt}`,
    digest: dg(`kit:${base}:${path}`),
    size,
    annotations: { 'org.cncf.model.filepath': path, ...extra },
  };
}

const kitLayers = [
  kitLayer('model', 'tar', 'models/qwen2.gguf', 400_000),
  kitLayer('modelpart', 'tar', 'models/tokenizer', 3_000),
  kitLayer('code', 'tar', 'src', 2_000),
  kitLayer('code', 'tar', 'prompts/system.md', 500, { 'ml.kitops.modelkit.layer-subtype': 'prompt' }),
  kitLayer('dataset', 'tar+gzip', 'data/train.csv', 9_000),
  kitLayer('docs', 'raw', 'README.md', 700),
  kitLayer('docs', 'tar+zstd', 'docs/', 1_200),
  kitLayer('docs', 'raw', '../escape.txt', 5),
];
const d = (i: number) => ({ digest: kitLayers[i].digest as string, diffId: dg(`diff${i}`) });

/** `kit pack` (current): config = Kitfile JSON with digest/diffId per entry; tar layers named context-relative. */
export const kitops = {
  manifest: {
    schemaVersion: 2,
    mediaType: OCI,
    artifactType: 'application/vnd.kitops.modelkit.manifest.v1+json',
    config: { mediaType: 'application/vnd.kitops.modelkit.config.v1+json', digest: dg('kit-config'), size: 1500 },
    layers: kitLayers,
    annotations: { 'ml.kitops.modelkit.cli-version': '1.10.0' },
  },
  config: {
    manifestVersion: '1.0.0',
    package: { name: 'qwen-kit', version: '1.0.0', authors: ['Jane'], license: 'Apache-2.0' },
    model: {
      name: 'qwen2',
      path: 'models/qwen2.gguf',
      framework: 'llama.cpp',
      format: 'gguf',
      parameters: { temperature: 0.7 },
      parts: [{ name: 'tokenizer', path: 'models/tokenizer', type: 'tokenizer', ...d(1) }],
      ...d(0),
    },
    code: [{ path: 'src', description: 'training code', ...d(2) }],
    prompts: [{ path: 'prompts/system.md', ...d(3) }],
    datasets: [{ name: 'train', path: 'data/train.csv', ...d(4) }],
    docs: [{ path: 'README.md', ...d(5) }, { path: 'docs/', ...d(6) }, { path: '../escape.txt', ...d(7) }],
  },
};

/** An older ModelKit: config entries without digest/diffId, so tar entries are relative to dirname(path). */
export const kitopsOld = {
  manifest: {
    schemaVersion: 2,
    mediaType: OCI,
    config: { mediaType: 'application/vnd.kitops.modelkit.config.v1+json', digest: dg('kit-old-config'), size: 400 },
    layers: [
      { mediaType: 'application/vnd.kitops.modelkit.model.v1.tar+gzip', digest: dg('old-model'), size: 100 },
      { mediaType: 'application/vnd.kitops.modelkit.code.v1.tar', digest: dg('old-code'), size: 50 },
      { mediaType: 'application/vnd.kitops.modelkit.dataset.v1.tar', digest: dg('old-data'), size: 70 },
    ],
  },
  config: JSON.stringify({
    manifestVersion: 'v1.0.0',
    package: { name: 'old-kit' },
    model: { name: 'm', path: 'models/deep/model.onnx', format: 'onnx' },
    code: [{ path: 'src' }],
    datasets: [{ name: 'd', path: 'data/set/train.csv' }],
  }),
};

/** `kit pack --use-model-pack` (v1.10+): ModelPack ids plus the Kitfile in a manifest annotation. */
export const kitopsModelPack = {
  manifest: {
    schemaVersion: 2,
    mediaType: OCI,
    artifactType: 'application/vnd.cncf.model.manifest.v1+json',
    config: { mediaType: 'application/vnd.cncf.model.config.v1+json', digest: dg('kmp-config'), size: 300 },
    layers: [
      {
        mediaType: 'application/vnd.cncf.model.weight.v1.tar',
        digest: dg('kmp-w'),
        size: 100,
        annotations: { 'org.cncf.model.filepath': 'models', 'org.cncf.model.file.metadata+json': meta('models', 0, 53) },
      },
    ],
    annotations: { 'ml.kitops.modelkit.kitfile': JSON.stringify({ manifestVersion: '1.0.0', package: { name: 'kmp' }, model: { path: 'models' } }) },
  },
  config: { descriptor: { name: 'kmp' }, modelfs: { type: 'layers', diffIds: [dg('kmp')] }, config: {} },
};

/** `oras push reg/repo:v1 model.gguf:application/vnd.oci.image.layer.v1.tar weights/ notes.txt` (image-spec v1.1). */
export const oras = {
  manifest: {
    schemaVersion: 2,
    mediaType: OCI,
    artifactType: 'application/vnd.unknown.artifact.v1',
    config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a', size: 2, data: 'e30=' },
    layers: [
      { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: dg('oras-model'), size: 4000, annotations: { 'org.opencontainers.image.title': 'model.gguf' } },
      {
        mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
        digest: dg('oras-dir'),
        size: 900,
        annotations: { 'org.opencontainers.image.title': 'weights', 'io.deis.oras.content.digest': dg('oras-dir-tar'), 'io.deis.oras.content.unpack': 'true' },
      },
      { mediaType: 'text/plain', digest: dg('oras-notes'), size: 12, annotations: { 'org.opencontainers.image.title': 'notes.txt' } },
      { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: dg('oras-untitled'), size: 3 },
      { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: dg('oras-evil'), size: 3, annotations: { 'org.opencontainers.image.title': '../../evil' } },
    ],
    annotations: { 'org.opencontainers.image.created': '2025-01-01T00:00:00Z' },
  },
  config: {},
};

function ol(role: string, size: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { mediaType: `application/vnd.ollama.image.${role}`, digest: dg(`ollama:${role}:${size}`), size, ...extra };
}

/** registry.ollama.ai/library/llama3.1:8b as Ollama serves it (schema2, role layers, non-standard `from`/`name`). */
export const ollama = {
  manifest: {
    schemaVersion: 2,
    mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
    config: { mediaType: 'application/vnd.docker.container.image.v1+json', digest: dg('ollama-config'), size: 485 },
    layers: [
      ol('model', 4_920_734_272, { from: dg('src') }),
      ol('projector', 600_000),
      ol('template', 1_481),
      ol('license', 12_320),
      ol('license', 1_700),
      ol('params', 96),
      ol('system', 40),
      ol('messages', 300),
      ol('adapter', 1_000),
      ol('tensor', 2_000, { name: 'blk.0.attn_q.weight' }),
      ol('json', 100, { name: '../config.json' }),
    ],
  },
  config: {
    model_format: 'gguf',
    model_family: 'llama',
    model_families: ['llama'],
    model_type: '8.0B',
    file_type: 'Q4_K_M',
    architecture: 'amd64',
    os: 'linux',
    context_length: 131072,
    rootfs: { type: 'layers', diff_ids: [dg('o1')] },
  },
};

/** A plain container image: nothing we can name. */
export const unknownImage = {
  manifest: {
    schemaVersion: 2,
    mediaType: OCI,
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: dg('img-config'), size: 1000 },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: dg('img-layer'), size: 30_000_000 }],
  },
  config: { architecture: 'amd64', os: 'linux' },
};
