/**
 * Which tool wrote an artifact (peer-formats.md §1). Checked in this order, first match wins: Ollama (Docker schema2
 * manifest with `application/vnd.ollama.image.*` layers), KitOps (artifactType or config type), Docker model-runner
 * (config v0.1/v0.2), ModelPack (`vnd.cncf.model.*`: modelpack, `vnd.cnai.model.*`: modelpack-legacy), ORAS (any
 * layer titled with `org.opencontainers.image.title`), else unknown.
 */

import { MT_DOCKER_MANIFEST } from '../oci/media-types.js';

export type ArtifactFormat = 'modelpack' | 'modelpack-legacy' | 'docker' | 'kitops' | 'oras' | 'ollama' | 'unknown';

export const MT_KITOPS_MANIFEST = 'application/vnd.kitops.modelkit.manifest.v1+json';
export const MT_KITOPS_INDEX = 'application/vnd.kitops.modelkit.index.v1+json';
export const MT_KITOPS_CONFIG = 'application/vnd.kitops.modelkit.config.v1+json';
export const MT_DOCKER_MODEL_CONFIG_V01 = 'application/vnd.docker.ai.model.config.v0.1+json';
export const MT_DOCKER_MODEL_CONFIG_V02 = 'application/vnd.docker.ai.model.config.v0.2+json';
export const MT_OLLAMA_PREFIX = 'application/vnd.ollama.image.';
export const ANN_KITOPS_KITFILE = 'ml.kitops.modelkit.kitfile';

const MODELPACK_RE = /^application\/vnd\.(cncf|cnai)\.model\./;

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

function layersOf(manifest: any): any[] {
  return Array.isArray(manifest?.layers) ? manifest.layers : [];
}

/**
 * Detect the artifact format of a parsed manifest (or index). `mediaType` is the Content-Type the manifest was served
 * with, used when the body carries no `mediaType` field.
 */
export function detectFormat(manifest: any, mediaType?: string): ArtifactFormat {
  if (typeof manifest !== 'object' || manifest === null) return 'unknown';
  const mt = str(manifest.mediaType) ?? mediaType;
  const layers = layersOf(manifest);
  const artifactType = str(manifest.artifactType);
  const configType = str(manifest.config?.mediaType);

  const ollamaLayers = layers.some((l) => str(l?.mediaType)?.startsWith(MT_OLLAMA_PREFIX));
  if (ollamaLayers && (mt === undefined || mt === MT_DOCKER_MANIFEST)) return 'ollama';

  if (artifactType === MT_KITOPS_MANIFEST || artifactType === MT_KITOPS_INDEX || configType === MT_KITOPS_CONFIG) return 'kitops';

  if (configType === MT_DOCKER_MODEL_CONFIG_V01 || configType === MT_DOCKER_MODEL_CONFIG_V02) return 'docker';

  const mpType = artifactType !== undefined && MODELPACK_RE.test(artifactType) ? artifactType : configType !== undefined && MODELPACK_RE.test(configType) ? configType : undefined;
  if (mpType !== undefined) return mpType.startsWith('application/vnd.cnai.') ? 'modelpack-legacy' : 'modelpack';

  if (layers.some((l) => typeof l?.annotations?.['org.opencontainers.image.title'] === 'string')) return 'oras';
  return 'unknown';
}
