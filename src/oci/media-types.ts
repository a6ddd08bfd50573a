/**
 * Media types and annotation keys (ModelPack model-spec v0.0.7+, `cncf` family; legacy `cnai` family for reading
 * and for --format modelpack-legacy). See shared docs modelpack.md §2–§3.
 */

export const MT_OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const MT_OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const MT_DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
export const MT_DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
export const MT_OCI_EMPTY = 'application/vnd.oci.empty.v1+json';

export const MANIFEST_MEDIA_TYPES = [MT_OCI_MANIFEST, MT_OCI_INDEX, MT_DOCKER_MANIFEST, MT_DOCKER_LIST];

export type IdFamily = 'cncf' | 'cnai';
export type LayerKind = 'weight' | 'weight.config' | 'doc' | 'code' | 'dataset';
export type LayerEncoding = 'raw' | 'tar' | 'tar+gzip' | 'tar+zstd';

export const LAYER_KINDS: readonly LayerKind[] = ['weight.config', 'weight', 'code', 'doc', 'dataset'];

export function artifactType(family: IdFamily = 'cncf'): string {
  return `application/vnd.${family}.model.manifest.v1+json`;
}
export function configMediaType(family: IdFamily = 'cncf'): string {
  return `application/vnd.${family}.model.config.v1+json`;
}
export function layerMediaType(kind: LayerKind, encoding: LayerEncoding, family: IdFamily = 'cncf'): string {
  return `application/vnd.${family}.model.${kind}.v1.${encoding}`;
}

export const MT_MODEL_MANIFEST = artifactType('cncf');
export const MT_MODEL_CONFIG = configMediaType('cncf');

export interface ParsedLayerType {
  family: IdFamily;
  kind: LayerKind;
  encoding: LayerEncoding;
}

const LAYER_RE = /^application\/vnd\.(cncf|cnai)\.model\.(weight\.config|weight\.code|weight|doc|code|dataset)\.v1\.(raw|tar\+gzip|tar\+zstd|tar|gguf|safetensors)$/;

/**
 * Classify a ModelPack layer media type by parsing it (not by string equality). Docker model-runner's
 * `weight.v1.gguf`/`.safetensors` extensions read as raw weights; the blog typo `weight.code` reads as code.
 */
export function parseLayerMediaType(mediaType: string): ParsedLayerType | undefined {
  const m = LAYER_RE.exec(mediaType);
  if (!m) return undefined;
  const family = m[1] as IdFamily;
  let kind = m[2] as string;
  if (kind === 'weight.code') kind = 'code';
  let encoding = m[3] as string;
  if (encoding === 'gguf' || encoding === 'safetensors') encoding = 'raw';
  return { family, kind: kind as LayerKind, encoding: encoding as LayerEncoding };
}

export function isModelArtifactType(t: string | undefined): boolean {
  return t === artifactType('cncf') || t === artifactType('cnai');
}
export function isModelConfigType(t: string | undefined): boolean {
  return t === configMediaType('cncf') || t === configMediaType('cnai');
}

export function annotationKeys(family: IdFamily = 'cncf') {
  return {
    filepath: `org.${family}.model.filepath`,
    fileMetadata: `org.${family}.model.file.metadata+json`,
    untested: `org.${family}.model.file.mediatype.untested`,
    modelfile: `org.${family}.modctl.modelfile`,
  } as const;
}

export const ANN_TITLE = 'org.opencontainers.image.title';
export const ANN_REF_NAME = 'org.opencontainers.image.ref.name';
export const ANN_CREATED = 'org.opencontainers.image.created';
export const ANN_ORAS_UNPACK = 'io.deis.oras.content.unpack';

/** The file path a layer stands for: current key, then legacy key, then the OCI title. */
export function layerFilepath(annotations: Record<string, string> | undefined): string | undefined {
  if (!annotations) return undefined;
  return (
    annotations['org.cncf.model.filepath'] ??
    annotations['org.cnai.model.filepath'] ??
    annotations[ANN_TITLE]
  );
}

export function layerFileMetadata(annotations: Record<string, string> | undefined): string | undefined {
  if (!annotations) return undefined;
  return annotations['org.cncf.model.file.metadata+json'] ?? annotations['org.cnai.model.file.metadata+json'];
}
