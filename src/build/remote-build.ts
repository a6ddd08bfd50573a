/**
 * `build --output-remote`: build straight into the registry named by the target. Each layer is pushed as it is read
 * (upload-file.ts: hash while uploading; digest-cache hits confirmed by HEAD are skipped without reading), then the
 * config blob, the manifest by digest, and the tag (always PUT, also when it pointed elsewhere). Nothing goes into the
 * local store except the digest cache.
 */
import { AbortedError } from '../errors.js';
import { MT_OCI_MANIFEST } from '../oci/media-types.js';
import { digestOf } from '../oci/digest.js';
import { RegistryClient, type RemoteOptions } from '../remote/index.js';
import { mapLimit } from '../util/limit.js';
import { assembleArtifact, builtLayers, prepareBuild, type BuildCommonOptions, type BuildResult } from './builder.js';
import { prepareConfigValidatorSoon } from './config.js';
import { DigestCache } from './digest-cache.js';
import { entrySize } from './sources.js';
import { pushBytes, pushLayer, type PushedLayer } from './upload-file.js';

export interface RemoteBuildOptions extends BuildCommonOptions {
  /** Store directory: only its digest cache is read and written. */
  cacheDir: string;
  /** Transport options (plain HTTP, TLS, env for credentials). Its signal is ignored in favour of `signal`. */
  remote: RemoteOptions;
}

export interface RemoteBuildResult extends BuildResult {
  pushed: true;
  /** Blobs sent to the registry (layers and config). */
  blobsUploaded: number;
  /** Blobs the registry already held (digest-cache hit or HEAD), so nothing was sent. */
  blobsSkipped: number;
  /** Layers whose content was read and hashed (the rest were digest-cache hits). */
  hashed: number;
  /** Layers skipped on a digest-cache hit confirmed by HEAD, without reading the file. */
  cacheHits: number;
  bytesUploaded: number;
}

export async function remoteBuild(opts: RemoteBuildOptions): Promise<RemoteBuildResult> {
  const prep = await prepareBuild(opts);
  const { entries, layerOpts, ctxReal, concurrency, family, warn, ref } = prep;
  const repo = ref.repository;
  // One controller for the whole push: the first failure stops the other transfers.
  const ctl = new AbortController();
  const parent = opts.signal ?? opts.remote.signal;
  const onAbort = () => ctl.abort();
  if (parent?.aborted) throw new AbortedError();
  parent?.addEventListener('abort', onAbort, { once: true });
  const client = new RegistryClient(ref.registry, { ...opts.remote, signal: ctl.signal, concurrency });
  client.addScopeHints(client.pushScope(repo));
  client.warmSendWorkers(Math.max(0, ...entries.map(entrySize)));
  const cache = await DigestCache.load(opts.cacheDir);

  let first: unknown;
  // the schema compiles while the uploads run, not after the last one
  const cancelWarm = prep.format === 'docker' ? () => {} : prepareConfigValidatorSoon();
  try {
    const built = await mapLimit(entries, concurrency, async (e): Promise<PushedLayer> => {
      try {
        return await pushLayer({ client, repo, cache, layerOpts, contextReal: ctxReal, signal: ctl.signal, onProgress: opts.onProgress }, e);
      } catch (err) {
        first ??= err;
        ctl.abort();
        throw err;
      }
    }, { size: entrySize });
    await cache.save().catch((e) => warn(`could not save the build digest cache: ${(e as Error).message}`));

    const { configBytes, manifest } = await assembleArtifact(prep, opts, built.map((b) => b.desc));
    const cfg = await pushBytes(client, repo, configBytes, ctl.signal);
    const manifestBytes = Buffer.from(JSON.stringify(manifest));
    const { digest } = await client.putManifest(repo, digestOf(manifestBytes), manifestBytes, MT_OCI_MANIFEST);
    // Always PUT the tag, also when it already pointed elsewhere (or here: cheap and idempotent).
    await client.putManifest(repo, ref.tag!, manifestBytes, MT_OCI_MANIFEST);

    const layers = built.map((b) => ({ desc: b.desc, reused: b.reused }));
    const uploadedLayers = built.filter((b) => b.uploaded).length;
    return {
      reference: prep.name,
      digest,
      size: manifestBytes.length + cfg.size + built.reduce((a, b) => a + b.desc.size, 0),
      mediaType: MT_OCI_MANIFEST,
      artifactType: manifest.artifactType!,
      config: { digest: cfg.digest, size: cfg.size },
      layers: builtLayers(family, layers),
      warnings: prep.warnings,
      pushed: true,
      blobsUploaded: uploadedLayers + (cfg.uploaded ? 1 : 0),
      blobsSkipped: built.length - uploadedLayers + (cfg.uploaded ? 0 : 1),
      hashed: built.filter((b) => b.hashed).length,
      cacheHits: built.filter((b) => b.cacheHit).length,
      bytesUploaded: built.reduce((a, b) => a + b.bytesUploaded, 0) + cfg.bytesUploaded,
    };
  } catch (e) {
    // Keep what was learnt: blobs pushed before the failure are skipped next time.
    await cache.save().catch(() => {});
    if (parent?.aborted) {
      await client.cancelOpenUploads();
      throw new AbortedError();
    }
    await client.cancelOpenUploads();
    throw first ?? e;
  } finally {
    cancelWarm();
    parent?.removeEventListener('abort', onAbort);
    await client.close();
  }
}
