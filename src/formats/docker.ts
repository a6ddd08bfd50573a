/**
 * Writing Docker model-runner artifacts (peer-formats.md §2.2–§2.4, following docker/model-runner's code rather than
 * docker/model-spec): the layer media type of each file and the config blob. GGUF models get config v0.1 (runtime
 * finds files by media type), everything else v0.2 (paths from the filepath annotations).
 */

import path from 'node:path';
import type { WeightsMetadata } from '../weights/infer.js';
import { MT_DOCKER_MODEL_CONFIG_V01, MT_DOCKER_MODEL_CONFIG_V02 } from './detect.js';

export const MT_DOCKER_GGUF = 'application/vnd.docker.ai.gguf.v3';
export const MT_DOCKER_SAFETENSORS = 'application/vnd.docker.ai.safetensors';
export const MT_DOCKER_DDUF = 'application/vnd.docker.ai.dduf';
export const MT_DOCKER_LICENSE = 'application/vnd.docker.ai.license';
export const MT_DOCKER_MMPROJ = 'application/vnd.docker.ai.mmproj';
export const MT_DOCKER_CHAT_TEMPLATE = 'application/vnd.docker.ai.chat.template.jinja';
export const MT_DOCKER_FILE = 'application/vnd.docker.ai.model.file';

const WEIGHT_TYPES = new Set([MT_DOCKER_GGUF, MT_DOCKER_SAFETENSORS, MT_DOCKER_DDUF]);

/**
 * Docker layer media type for a file (§2.4 rule 2, by lower-cased base name): `.safetensors`, `.gguf` (`mmproj` in
 * the name of a GGUF model's `.gguf` → projector), `.dduf`, `.jinja` or `chat_template` → chat template,
 * `license`/`licence`/`copying`/`notice` → license, anything else → `model.file`.
 */
export function dockerLayerMediaType(filePath: string, isGgufModel: boolean): string {
  const base = path.posix.basename(filePath.replace(/\\/g, '/')).toLowerCase();
  if (base.endsWith('.safetensors')) return MT_DOCKER_SAFETENSORS;
  if (base.endsWith('.gguf')) return isGgufModel && base.includes('mmproj') ? MT_DOCKER_MMPROJ : MT_DOCKER_GGUF;
  if (base.endsWith('.dduf')) return MT_DOCKER_DDUF;
  if (base.endsWith('.jinja') || base.includes('chat_template')) return MT_DOCKER_CHAT_TEMPLATE;
  if (/licen[cs]e|copying|notice/.test(base)) return MT_DOCKER_LICENSE;
  return MT_DOCKER_FILE;
}

export interface DockerConfigFile {
  config: {
    format?: string;
    quantization?: string;
    parameters?: string;
    architecture?: string;
    size?: string;
    gguf?: Record<string, string>;
    safetensors?: Record<string, string>;
    context_size?: number;
  };
  descriptor: { created?: string };
  rootfs: { type: 'rootfs'; diff_ids: string[] };
}

export interface DockerConfigOptions {
  /** Every layer, in manifest order. */
  files: Array<{ path: string; size: number; mediaType: string }>;
  meta: WeightsMetadata;
  /** RFC 3339; omit for no `descriptor.created`, pin it for reproducible digests. */
  created?: string;
  /** One per layer; layers are raw, so diff_id = blob digest. */
  diffIds: string[];
  /** `--context-size` override. */
  contextSize?: number;
}

/** `8.03B`, `494.03M`: two decimals, no space (Docker's `config.parameters`). */
export function formatDockerParameters(count: number): string {
  const scales: Array<[number, string]> = [
    [1e12, 'T'],
    [1e9, 'B'],
    [1e6, 'M'],
    [1e3, 'K'],
  ];
  for (let i = 0; i < scales.length; i++) {
    const [div, unit] = scales[i];
    if (count < div) continue;
    const v = (count / div).toFixed(2);
    if (Number(v) >= 1000 && i > 0) return `${(count / scales[i - 1][0]).toFixed(2)}${scales[i - 1][1]}`;
    return `${v}${unit}`;
  }
  return String(Math.round(count));
}

/** IEC size with two decimals and no space: `4.58GiB`, `512.00MiB`, `100B` (Docker's `config.size`). */
export function formatDockerSize(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${bytes}B` : `${v.toFixed(2)}${units[u]}`;
}

/** Docker's safetensors `quantization`: the single dtype, `mixed`, or `unknown`. */
function safetensorsQuantization(dtypes: string[] | undefined): string {
  if (!dtypes || dtypes.length === 0) return 'unknown';
  return dtypes.length === 1 ? dtypes[0] : 'mixed';
}

/**
 * The Docker model config: media type (v0.1 for a GGUF model, else v0.2) and body. Key order follows Docker's Go
 * structs (config, descriptor, rootfs; format, quantization, parameters, architecture, size, gguf, safetensors,
 * context_size) so digests match tools that marshal the same values.
 */
export function dockerConfigFor(opts: DockerConfigOptions): { mediaType: string; body: DockerConfigFile } {
  const { meta } = opts;
  const isGguf = meta.format === 'gguf' || (meta.format === undefined && opts.files.some((f) => f.mediaType === MT_DOCKER_GGUF));
  const weights = opts.files.filter((f) => WEIGHT_TYPES.has(f.mediaType));
  const size = (weights.length > 0 ? weights : opts.files).reduce((a, f) => a + f.size, 0);

  const config: DockerConfigFile['config'] = {};
  const format = meta.format ?? (isGguf ? 'gguf' : undefined);
  if (format) config.format = format;
  const quantization = isGguf ? meta.quantization : format === 'safetensors' ? safetensorsQuantization(meta.dtypes) : meta.quantization;
  if (quantization) config.quantization = quantization;
  const parameters = meta.paramCount !== undefined ? formatDockerParameters(meta.paramCount) : meta.paramSize;
  if (parameters) config.parameters = parameters;
  if (meta.architecture) config.architecture = meta.architecture;
  config.size = formatDockerSize(size);
  if (isGguf && meta.ggufKv) config.gguf = { ...meta.ggufKv };
  if (format === 'safetensors' && meta.safetensorsKv) config.safetensors = { ...meta.safetensorsKv };
  const ctx = opts.contextSize ?? meta.contextLength;
  // int32 in Docker's struct; anything outside is dropped rather than overflowing.
  if (ctx !== undefined && Number.isInteger(ctx) && ctx > 0 && ctx <= 0x7fffffff) config.context_size = ctx;

  const body: DockerConfigFile = {
    config,
    descriptor: opts.created !== undefined ? { created: opts.created } : {},
    rootfs: { type: 'rootfs', diff_ids: [...opts.diffIds] },
  };
  return { mediaType: isGguf ? MT_DOCKER_MODEL_CONFIG_V01 : MT_DOCKER_MODEL_CONFIG_V02, body };
}
