/**
 * Where each layer of a peer-format artifact lands on extract (peer-formats.md §2–§5), and one summary shape for
 * `inspect`. This module only maps: paths are returned exactly as the artifact states them (absolute paths and `..`
 * included) so that the extractor's safe-path checks see and refuse hostile names.
 *
 * LayerOutput semantics:
 * - `encoding: 'raw'`: write the blob's bytes to `path`; no `path` means the artifact gives no name (skip it, or
 *   offer export by digest).
 * - archives (`unpack: true`, encoding tar / tar+gzip / tar+zstd): unpack the entries under directory `path`
 *   (undefined = the output root). With `stripPrefix`, every entry is named `<stripPrefix>/…`; the prefix is removed
 *   before joining with `path`, and entries outside it are refused (ORAS directories, oras-go `ensureBasePath`).
 */

import { ModctlError } from '../errors.js';
import { ANN_ORAS_UNPACK, ANN_TITLE, layerFilepath, parseLayerMediaType } from '../oci/media-types.js';
import type { Descriptor } from '../oci/types.js';
import { ANN_KITOPS_KITFILE, MT_DOCKER_MODEL_CONFIG_V01, MT_OLLAMA_PREFIX, type ArtifactFormat } from './detect.js';

export type OutputEncoding = 'raw' | 'tar' | 'tar+gzip' | 'tar+zstd';

export interface LayerOutput {
  layer: Descriptor;
  path?: string;
  encoding: OutputEncoding;
  unpack?: boolean;
  stripPrefix?: string;
  /** Digest of the uncompressed tar to verify after gunzip (ORAS `io.deis.oras.content.digest`). */
  contentDigest?: string;
  /** The layer's role in its format: ModelPack kind, Docker/Ollama role, KitOps `code[0]`-style entry. */
  role?: string;
}

export const ANN_ORAS_DIGEST = 'io.deis.oras.content.digest';
export const ANN_KITOPS_LAYER_SUBTYPE = 'ml.kitops.modelkit.layer-subtype';

function layersOf(manifest: any): Descriptor[] {
  return Array.isArray(manifest?.layers) ? (manifest.layers as Descriptor[]) : [];
}

function dirname(p: string): string | undefined {
  const i = p.replace(/\/+$/, '').lastIndexOf('/');
  if (i <= 0) return i === 0 ? '/' : undefined;
  return p.slice(0, i);
}

// ---------------------------------------------------------------------------------------------------------------
// ModelPack (and anything unknown that carries filepath annotations)

function modelpackOutputs(manifest: any): LayerOutput[] {
  return layersOf(manifest).map((layer) => {
    const parsed = parseLayerMediaType(layer.mediaType);
    const annotated = layerFilepath(layer.annotations);
    if (!parsed) return { layer, path: annotated, encoding: 'raw', role: 'unknown' };
    if (parsed.encoding === 'raw') return { layer, path: annotated, encoding: 'raw', role: parsed.kind };
    // Tar layers (modctl, KitOps ModelPack mode) name their entries relative to the context: unpack at the root.
    return { layer, encoding: parsed.encoding, unpack: true, role: parsed.kind };
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Docker model-runner (§2)

const DOCKER = 'application/vnd.docker.ai.';
/** Docker layer media type → role; docker/model-spec's `gguf.v3.*` strings are read as aliases. */
const DOCKER_ROLES: Record<string, string> = {
  [`${DOCKER}gguf.v3`]: 'gguf',
  [`${DOCKER}safetensors`]: 'safetensors',
  [`${DOCKER}dduf`]: 'dduf',
  [`${DOCKER}license`]: 'license',
  [`${DOCKER}mmproj`]: 'mmproj',
  [`${DOCKER}gguf.v3.mmproj`]: 'mmproj',
  [`${DOCKER}gguf.v3.lora`]: 'lora',
  [`${DOCKER}chat.template.jinja`]: 'chat-template',
  [`${DOCKER}model.file`]: 'file',
  [`${DOCKER}vllm.config.tar`]: 'vllm-config',
  [`${DOCKER}dir.tar`]: 'dir',
};

function shardName(base: string, ext: string, i: number, n: number): string {
  if (n === 1) return `${base}${ext}`;
  const w = Math.max(5, String(n).length);
  return `${base}-${String(i + 1).padStart(w, '0')}-of-${String(n).padStart(w, '0')}${ext}`;
}

function dockerOutputs(manifest: any, configMediaType: string | undefined): LayerOutput[] {
  const layers = layersOf(manifest);
  const v01 = configMediaType === MT_DOCKER_MODEL_CONFIG_V01;
  const roles = layers.map((l) => DOCKER_ROLES[l.mediaType]);
  const totals = new Map<string, number>();
  for (const r of roles) if (r) totals.set(r, (totals.get(r) ?? 0) + 1);
  const seen = new Map<string, number>();
  return layers.map((layer, idx): LayerOutput => {
    const role = roles[idx];
    const annotated = layerFilepath(layer.annotations);
    if (!role) {
      // `--format cncf` layers or anything new: ModelPack rules.
      const parsed = parseLayerMediaType(layer.mediaType);
      if (parsed && parsed.encoding !== 'raw') return { layer, encoding: parsed.encoding, unpack: true, role: parsed.kind };
      return { layer, path: annotated, encoding: 'raw', role: parsed?.kind ?? 'unknown' };
    }
    const i = seen.get(role) ?? 0;
    seen.set(role, i + 1);
    const n = totals.get(role) ?? 1;
    if (role === 'vllm-config') return { layer, encoding: 'tar', unpack: true, role };
    // dir.tar entries are named `<basename of the dir>/…` (packaging/dirtar.go): unpack into the dir's parent.
    if (role === 'dir') return { layer, path: annotated === undefined ? undefined : dirname(annotated), encoding: 'tar', unpack: true, role };
    if (!v01) return { layer, path: annotated, encoding: 'raw', role };
    // v0.1 bundles use fixed names; shards and repeated files keep their annotated names.
    const fixed = (base: string, ext: string) => (n === 1 ? `${base}${ext}` : (annotated ?? shardName(base, ext, i, n)));
    switch (role) {
      case 'gguf': return { layer, path: fixed('model', '.gguf'), encoding: 'raw', role };
      case 'safetensors': return { layer, path: fixed('model', '.safetensors'), encoding: 'raw', role };
      case 'dduf': return { layer, path: fixed('model', '.dduf'), encoding: 'raw', role };
      case 'mmproj': return { layer, path: fixed('model', '.mmproj'), encoding: 'raw', role };
      case 'lora': return { layer, path: fixed('adapter', '.gguf'), encoding: 'raw', role };
      case 'chat-template': return { layer, path: fixed('template', '.jinja'), encoding: 'raw', role };
      case 'license': return { layer, path: annotated ?? (n === 1 ? 'LICENSE' : `LICENSE-${i + 1}`), encoding: 'raw', role };
      default: return { layer, path: annotated, encoding: 'raw', role };
    }
  });
}

// ---------------------------------------------------------------------------------------------------------------
// KitOps (§3)

const KITOPS_LAYER_RE = /^application\/vnd\.kitops\.modelkit\.(model|modelpart|dataset|code|docs|mcpb|prompts?)\.v1\.(tar|raw)(?:\+(gzip|zstd))?$/;

interface KitEntry {
  path?: unknown;
  digest?: unknown;
  diffId?: unknown;
}

/** The Kitfile: the config blob (object or JSON text), else the manifest's `ml.kitops.modelkit.kitfile` annotation. */
export function kitfileOf(manifest: any, config: any): Record<string, any> | undefined {
  const parse = (v: unknown): Record<string, any> | undefined => {
    if (typeof v === 'string') {
      try {
        return parse(JSON.parse(v));
      } catch {
        return undefined;
      }
    }
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, any>) : undefined;
  };
  return parse(config) ?? parse(manifest?.annotations?.[ANN_KITOPS_KITFILE]);
}

function kitopsOutputs(manifest: any, config: any): LayerOutput[] {
  const kit = kitfileOf(manifest, config) ?? {};
  const arr = (v: unknown): KitEntry[] => (Array.isArray(v) ? (v as KitEntry[]) : []);
  const lists: Record<string, { name: string; entries: KitEntry[] }> = {
    model: { name: 'model', entries: kit.model && typeof kit.model === 'object' ? [kit.model as KitEntry] : [] },
    modelpart: { name: 'model.parts', entries: arr(kit.model?.parts) },
    dataset: { name: 'datasets', entries: arr(kit.datasets) },
    code: { name: 'code', entries: arr(kit.code) },
    prompt: { name: 'prompts', entries: arr(kit.prompts) },
    docs: { name: 'docs', entries: arr(kit.docs) },
    mcpb: { name: 'mcpServers', entries: arr(kit.mcpServers) },
  };
  const seen = new Map<string, number>();
  return layersOf(manifest).map((layer): LayerOutput => {
    const m = KITOPS_LAYER_RE.exec(layer.mediaType);
    const annotated = layerFilepath(layer.annotations);
    if (!m) {
      const parsed = parseLayerMediaType(layer.mediaType);
      if (parsed && parsed.encoding !== 'raw') return { layer, encoding: parsed.encoding, unpack: true, role: parsed.kind };
      return { layer, path: annotated, encoding: 'raw', role: 'unknown' };
    }
    let base = m[1] === 'prompts' ? 'prompt' : m[1];
    if (base === 'code' && layer.annotations?.[ANN_KITOPS_LAYER_SUBTYPE] === 'prompt') base = 'prompt';
    const i = seen.get(base) ?? 0;
    seen.set(base, i + 1);
    const list = lists[base];
    const entry = list.entries[i];
    const role = base === 'model' ? 'model' : `${list.name}[${i}]`;
    if (entry && typeof entry.digest === 'string' && entry.digest !== layer.digest) {
      throw new ModctlError('E_KITOPS_MISMATCH', `KitOps layer ${layer.digest} is mapped to ${role} in the Kitfile, whose digest is ${entry.digest}`, {
        hint: 'the ModelKit config does not describe its layers; the artifact is corrupt or was edited',
      });
    }
    const entryPath = entry && typeof entry.path === 'string' ? entry.path : undefined;
    if (m[2] === 'raw') return { layer, path: entryPath ?? annotated, encoding: 'raw', role };
    const encoding: OutputEncoding = m[3] ? (`tar+${m[3]}` as OutputEncoding) : 'tar';
    // Current KitOps tars name entries by their context-relative path: unpack at the root. Older ModelKits (no
    // digest/diffId in the config entries) name them relative to the parent of the entry path.
    const legacy = entry !== undefined && entry.digest === undefined && entry.diffId === undefined;
    const dir = legacy && entryPath !== undefined ? dirname(entryPath) : undefined;
    return { layer, path: dir, encoding, unpack: true, role };
  });
}

// ---------------------------------------------------------------------------------------------------------------
// ORAS (§4)

function orasOutputs(manifest: any): LayerOutput[] {
  return layersOf(manifest).map((layer): LayerOutput => {
    const title = layer.annotations?.[ANN_TITLE];
    if (title !== undefined && layer.annotations?.[ANN_ORAS_UNPACK] === 'true') {
      // oras-go always gzips directories, whatever media type the user gave; entries are named `<title>/…`.
      const out: LayerOutput = { layer, path: title, encoding: 'tar+gzip', unpack: true, stripPrefix: title, role: 'directory' };
      const d = layer.annotations?.[ANN_ORAS_DIGEST];
      if (d !== undefined) out.contentDigest = d;
      return out;
    }
    // ORAS labels plain files `…layer.v1.tar` too: without the unpack annotation a layer is the file's bytes.
    return { layer, path: title, encoding: 'raw', role: 'file' };
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Ollama (§5)

const OLLAMA_NAMES: Record<string, [string, string]> = {
  model: ['model', '.gguf'],
  adapter: ['adapter', '.gguf'],
  projector: ['projector', '.gguf'],
  draft: ['draft', '.gguf'],
  template: ['template', ''],
  prompt: ['prompt', ''],
  system: ['system', ''],
  params: ['params', '.json'],
  messages: ['messages', '.json'],
  embed: ['embed', ''],
  config: ['config', ''],
};

function ollamaOutputs(manifest: any): LayerOutput[] {
  const layers = layersOf(manifest);
  const roleOf = (l: Descriptor) => (l.mediaType.startsWith(MT_OLLAMA_PREFIX) ? l.mediaType.slice(MT_OLLAMA_PREFIX.length) : undefined);
  const totals = new Map<string, number>();
  for (const l of layers) {
    const r = roleOf(l);
    if (r) totals.set(r, (totals.get(r) ?? 0) + 1);
  }
  const seen = new Map<string, number>();
  return layers.map((layer): LayerOutput => {
    const role = roleOf(layer);
    // Ollama descriptors may carry a non-standard `name` (tensor name, config path).
    const name = typeof (layer as Record<string, unknown>).name === 'string' ? ((layer as Record<string, unknown>).name as string) : undefined;
    if (!role) return { layer, path: name, encoding: 'raw', role: 'unknown' };
    const i = seen.get(role) ?? 0;
    seen.set(role, i + 1);
    const n = totals.get(role) ?? 1;
    if (role === 'license') return { layer, path: `license-${i + 1}`, encoding: 'raw', role };
    if (role === 'tensor' || role === 'json') return { layer, path: name, encoding: 'raw', role };
    const fixed = OLLAMA_NAMES[role];
    if (!fixed) return { layer, path: name, encoding: 'raw', role };
    if (role === 'model' && name !== undefined) return { layer, path: name, encoding: 'raw', role };
    const [base, ext] = fixed;
    return { layer, path: n === 1 ? `${base}${ext}` : `${base}-${i + 1}${ext}`, encoding: 'raw', role };
  });
}

// ---------------------------------------------------------------------------------------------------------------

/** Map every layer of `manifest` to where it lands. `config` is the parsed config blob (needed for KitOps). */
export function layerOutputs(format: ArtifactFormat, manifest: any, config?: any): LayerOutput[] {
  return mapLayers(format, manifest, config).map((o) => {
    if (o.path === undefined) delete o.path;
    return o;
  });
}

function mapLayers(format: ArtifactFormat, manifest: any, config: any): LayerOutput[] {
  switch (format) {
    case 'modelpack':
    case 'modelpack-legacy':
    case 'unknown':
      return modelpackOutputs(manifest);
    case 'docker':
      return dockerOutputs(manifest, manifest?.config?.mediaType);
    case 'kitops':
      return kitopsOutputs(manifest, config);
    case 'oras':
      return orasOutputs(manifest);
    case 'ollama':
      return ollamaOutputs(manifest);
  }
}

export interface SummaryFile {
  path: string;
  size: number;
  mediaType: string;
}

/** One inspect shape for every format. */
export interface ArtifactSummary {
  format: ArtifactFormat;
  name?: string;
  family?: string;
  architecture?: string;
  paramSize?: string;
  quantization?: string;
  precision?: string;
  /** The weights' file format (`gguf`, `safetensors`, …). */
  modelFormat?: string;
  contextLength?: number;
  files: SummaryFile[];
}

function s(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

function n(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

function obj(v: unknown): Record<string, any> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, any>) : {};
}

/** Drop undefined fields so summaries compare and serialise cleanly. */
function compact(summary: ArtifactSummary): ArtifactSummary {
  return Object.fromEntries(Object.entries(summary).filter(([, v]) => v !== undefined)) as unknown as ArtifactSummary;
}

/** Summarise an artifact of any format: model metadata from its config plus the files it unpacks to. */
export function normalizeSummary(format: ArtifactFormat, manifest: any, config?: any): ArtifactSummary {
  const files = layerOutputs(format, manifest, config).map((o) => ({
    path: o.path ?? layerFilepath(o.layer.annotations) ?? o.layer.digest,
    size: o.layer.size,
    mediaType: o.layer.mediaType,
  }));
  const c = obj(typeof config === 'string' ? safeJson(config) : config);
  const base: ArtifactSummary = { format, files };
  switch (format) {
    case 'modelpack':
    case 'modelpack-legacy': {
      const d = obj(c.descriptor);
      const cc = obj(c.config);
      return compact({
        ...base,
        name: s(d.name),
        family: s(d.family),
        architecture: s(cc.architecture),
        paramSize: s(cc.paramSize) ?? s(cc.param_size),
        quantization: s(cc.quantization),
        precision: s(cc.precision),
        modelFormat: s(cc.format),
      });
    }
    case 'docker': {
      const cc = obj(c.config);
      const gguf = obj(cc.gguf);
      return compact({
        ...base,
        name: s(gguf['general.name']),
        architecture: s(cc.architecture),
        paramSize: s(cc.parameters),
        quantization: s(cc.quantization),
        modelFormat: s(cc.format),
        contextLength: n(cc.context_size),
      });
    }
    case 'kitops': {
      const kit = kitfileOf(manifest, config) ?? {};
      return compact({ ...base, name: s(obj(kit.package).name) ?? s(obj(kit.model).name), modelFormat: s(obj(kit.model).format) });
    }
    case 'ollama':
      // Ollama's `architecture` is the CPU architecture (amd64), not the model's, so it is not reported.
      return compact({
        ...base,
        family: s(c.model_family),
        paramSize: s(c.model_type),
        quantization: s(c.file_type),
        modelFormat: s(c.model_format),
        contextLength: n(c.context_length),
      });
    default:
      return base;
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
