import type { LocalStore, TaggedManifest } from './local-store.js';
import { ManifestSchema, IndexSchema, type Manifest, type Index } from '../oci/types.js';
import { MT_OCI_INDEX, MT_DOCKER_LIST, layerFilepath } from '../oci/media-types.js';
import { ModctlError } from '../errors.js';

export interface LoadedArtifact {
  tagged: TaggedManifest;
  manifestBytes: Buffer;
  /** Set when the reference points at a single manifest. */
  manifest?: Manifest;
  /** Set when the reference points at an image index. */
  index?: Index;
}

export function parseManifestJson(bytes: Buffer, what: string): Manifest | Index {
  let json: any;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    throw new ModctlError('E_MANIFEST_INVALID', `${what} is not valid JSON`, { cause: e });
  }
  if (Array.isArray(json?.manifests) || json?.mediaType === MT_OCI_INDEX || json?.mediaType === MT_DOCKER_LIST) {
    const r = IndexSchema.safeParse(json);
    if (!r.success) throw new ModctlError('E_MANIFEST_INVALID', `${what} is not a valid image index: ${r.error.issues[0]?.message}`);
    return r.data;
  }
  const r = ManifestSchema.safeParse(json);
  if (!r.success) throw new ModctlError('E_MANIFEST_INVALID', `${what} is not a valid image manifest: ${r.error.issues[0]?.path.join('.')} ${r.error.issues[0]?.message}`);
  return r.data;
}

export function isIndex(m: Manifest | Index): m is Index {
  return Array.isArray((m as Index).manifests);
}

export async function loadArtifact(store: LocalStore, ref: string): Promise<LoadedArtifact> {
  const tagged = await store.resolve(ref);
  const manifestBytes = await store.readBlob(tagged.descriptor.digest);
  const parsed = parseManifestJson(manifestBytes, `manifest ${tagged.descriptor.digest}`);
  return isIndex(parsed) ? { tagged, manifestBytes, index: parsed } : { tagged, manifestBytes, manifest: parsed };
}

/** Load a reference that must be a single manifest (an index needs a variant choice). */
export async function loadManifest(store: LocalStore, ref: string): Promise<LoadedArtifact & { manifest: Manifest }> {
  const a = await loadArtifact(store, ref);
  if (!a.manifest) {
    throw new ModctlError('E_IS_INDEX', `${ref} is an image index with ${a.index!.manifests.length} variants`, {
      hint: 'pick one with --variant key=value, or inspect it to list the variants',
    });
  }
  return a as LoadedArtifact & { manifest: Manifest };
}

export function layerPaths(m: Manifest): Array<string | undefined> {
  return m.layers.map((l) => layerFilepath(l.annotations));
}
