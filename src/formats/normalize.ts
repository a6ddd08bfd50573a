/**
 * The one normalisation step between "an artifact of some dialect" and the extractor (peer-formats.md §1–§7):
 * manifest + parsed config → every layer with the name users see (and `fetch --patterns` match), its role, and an
 * explicit extraction target (encoding, file or directory path, prefix to strip, content digest). Commands hand the
 * targets to src/extract, which then needs no dialect knowledge; paths stay untrusted and are checked there.
 *
 * Pure: no IO. The config is only needed for KitOps (paths live in the Kitfile); see `needsConfig`.
 */

import { layerFilepath, parseLayerMediaType, type LayerEncoding } from '../oci/media-types.js';
import type { Descriptor } from '../oci/types.js';
import { detectFormat, type ArtifactFormat } from './detect.js';
import { kitfileOf, layerOutputs, normalizeSummary, type ArtifactSummary, type LayerOutput } from './paths.js';

/** How the extractor handles one layer (structurally the extractor's `LayerTarget`). */
export interface NormalizedTarget {
  encoding: LayerEncoding;
  /** raw: the file path; archives: the directory to unpack under (undefined = the output root). */
  path?: string;
  stripPrefix?: string;
  contentDigest?: string;
}

export interface NormalizedLayer {
  /** The manifest's own descriptor (object identity is kept: it keys the extraction targets). */
  layer: Descriptor;
  /** What the layer is called: the file path (raw), or the path/directory an archive stands for; undefined = unnamed. */
  name?: string;
  /** Role in its dialect: ModelPack kind, Docker/Ollama role, KitOps entry (`code[0]`), ORAS `file`/`directory`. */
  role: string;
  /**
   * Explicit extraction target; undefined = the extractor's built-in ModelPack/OCI rules decide (layers of unknown
   * type in ModelPack or unknown artifacts, exactly as before normalisation existed).
   */
  target?: NormalizedTarget;
  /** Set when the layer cannot be extracted by name (e.g. an untitled ORAS layer): why it is skipped. */
  skip?: string;
}

export interface NormalizedArtifact {
  format: ArtifactFormat;
  layers: NormalizedLayer[];
  summary: ArtifactSummary;
}

/** Whether `normalizeArtifact` needs the config blob for this manifest (KitOps keeps its paths there). */
export function needsConfig(manifest: any, mediaType?: string): boolean {
  return detectFormat(manifest, mediaType) === 'kitops';
}

/** Parse a config blob leniently: JSON object, or undefined (ORAS empty configs, odd bytes). */
export function parseConfig(bytes: Buffer | undefined): unknown {
  if (!bytes) return undefined;
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch {
    return undefined;
  }
}

const KIT_ROLE_RE = /^(model\.parts|datasets|code|prompts|docs|mcpServers)\[(\d+)\]$/;

/** The Kitfile entry path behind a KitOps role (`code[0]` → `code[0].path`). */
function kitEntryPath(kit: Record<string, any> | undefined, role: string): string | undefined {
  if (!kit) return undefined;
  let entry: any;
  if (role === 'model') entry = kit.model;
  else {
    const m = KIT_ROLE_RE.exec(role);
    if (!m) return undefined;
    const list = m[1] === 'model.parts' ? kit.model?.parts : kit[m[1]];
    entry = Array.isArray(list) ? list[Number(m[2])] : undefined;
  }
  return typeof entry?.path === 'string' && entry.path !== '' ? entry.path.replace(/\/+$/, '') : undefined;
}

const PASSTHROUGH_FORMATS = new Set<ArtifactFormat>(['modelpack', 'modelpack-legacy', 'unknown']);

/** Normalise a manifest (not an index) of any dialect. Throws ModctlError for a KitOps digest mismatch. */
export function normalizeArtifact(manifest: any, config?: unknown, mediaType?: string): NormalizedArtifact {
  const format = detectFormat(manifest, mediaType);
  const outputs = layerOutputs(format, manifest, config);
  const kit = format === 'kitops' ? kitfileOf(manifest, config) : undefined;
  const layers = outputs.map((o) => normalizeOne(format, o, kit));
  const summary = normalizeSummary(format, manifest, config);
  // One file list for every dialect: the names computed here.
  summary.files = layers.map((l) => ({ path: l.name ?? l.layer.digest, size: l.layer.size, mediaType: l.layer.mediaType }));
  return { format, layers, summary };
}

function normalizeOne(format: ArtifactFormat, o: LayerOutput, kit: Record<string, any> | undefined): NormalizedLayer {
  const annotated = layerFilepath(o.layer.annotations);
  const role = o.role ?? 'unknown';
  if (PASSTHROUGH_FORMATS.has(format) && !parseLayerMediaType(o.layer.mediaType)) {
    // Not a ModelPack layer type: OCI tar layers, ORAS-style titled layers… the extractor's own rules apply.
    return { layer: o.layer, name: annotated, role };
  }
  if (o.encoding === 'raw') {
    if (o.path === undefined) {
      // ModelPack raw layers must be named: let the extractor report it (E_NO_FILEPATH). Peers' unnamed layers are
      // skipped, as `oras pull` skips untitled layers.
      if (PASSTHROUGH_FORMATS.has(format)) return { layer: o.layer, role, target: { encoding: 'raw' } };
      return { layer: o.layer, role, skip: `layer ${o.layer.digest} (${o.layer.mediaType}) has no file name` };
    }
    return { layer: o.layer, name: o.path, role, target: { encoding: 'raw', path: o.path } };
  }
  const target: NormalizedTarget = { encoding: o.encoding };
  if (o.path !== undefined) target.path = o.path;
  if (o.stripPrefix !== undefined) target.stripPrefix = o.stripPrefix;
  if (o.contentDigest !== undefined) target.contentDigest = o.contentDigest;
  const name = annotated ?? kitEntryPath(kit, role) ?? o.path;
  return name === undefined ? { layer: o.layer, role, target } : { layer: o.layer, name: name.replace(/\/+$/, '') || name, role, target };
}

export interface ExtractionInput {
  /** Layers to hand to extractLayers (skipped ones removed). */
  layers: Descriptor[];
  /** The extractor's `target` option. */
  target: (layer: Descriptor) => NormalizedTarget | undefined;
  /** Display name of a layer (progress labels). */
  label: (layer: Descriptor) => string;
  skipped: NormalizedLayer[];
}

/** Turn normalised layers (optionally a subset) into extractLayers' inputs. */
export function extractionInput(layers: NormalizedLayer[]): ExtractionInput {
  const byLayer = new Map<Descriptor, NormalizedLayer>();
  for (const l of layers) byLayer.set(l.layer, l);
  return {
    layers: layers.filter((l) => !l.skip).map((l) => l.layer),
    target: (d) => byLayer.get(d)?.target,
    label: (d) => byLayer.get(d)?.name ?? d.digest.slice(0, 19),
    skipped: layers.filter((l) => l.skip),
  };
}
