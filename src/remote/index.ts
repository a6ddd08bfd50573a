import { skipBytes } from '../util/stream.js';
/**
 * Public surface of the registry client (core library; the CLI builds on it). Everything else in src/remote is
 * internal. See shared docs registry-client.md for the protocol this implements.
 */
import { Readable } from 'node:stream';
import { DigestMismatchError, ModctlError, RegistryError, SizeMismatchError } from '../errors.js';
import { digestOf, digestAlgorithm } from '../oci/digest.js';
import type { Reference } from '../oci/reference.js';
import { MAX_MANIFEST_BYTES, type Descriptor } from '../oci/types.js';
import { eraseCredentials, normalizeRegistryKey, saveCredentials } from './auth/credentials.js';
import { assertBlobDescriptor } from './download.js';
import { shortDigest } from './errors.js';
import { discard, headerValue, readCapped } from './http.js';
import { parseContentRange } from './range.js';
import { RegistryClient, type RemoteOptions } from './repository.js';

export { RegistryClient, MANIFEST_ACCEPT, type RemoteOptions, type ClientOptions, type FetchedManifest, type RequestSpec } from './repository.js';
export { pushArtifact, pullArtifact, DEFAULT_CONCURRENCY, type TransferOptions, type PushResult, type PullResult } from './copy.js';
export { SMALL_BLOB_BYTES, type UploadOptions, type UploadResult } from './upload.js';
export { redactUrl, redactText } from './redact.js';
export { getCredentials, dockerConfigPath, normalizeRegistryKey, type Credentials } from './auth/credentials.js';

/** Fetch a manifest (or index) by tag or digest, verified; `json` is the parsed body. */
export async function fetchManifest(ref: Reference, opts: RemoteOptions = {}): Promise<{ descriptor: Descriptor; bytes: Buffer; json: any }> {
  const client = new RegistryClient(ref.registry, opts);
  try {
    return await client.getManifest(ref.repository, ref.digest ?? ref.tag ?? 'latest');
  } finally {
    await client.close();
  }
}

/** Fetch a small blob (a config) into memory: capped at 4 MiB, size and digest verified. */
export async function fetchBlobBytes(ref: Reference, desc: Descriptor, opts: RemoteOptions = {}): Promise<Buffer> {
  const client = new RegistryClient(ref.registry, opts);
  try {
    assertBlobDescriptor(desc, ref.registry);
    if (desc.size > MAX_MANIFEST_BYTES) {
      throw new ModctlError('E_TOO_LARGE', `blob ${desc.digest} is ${desc.size} bytes, over the ${MAX_MANIFEST_BYTES}-byte limit for in-memory reads`);
    }
    const res = await client.getBlob(ref.repository, desc.digest);
    if (res.status !== 200) {
      await discard(res);
      throw new RegistryError(ref.registry, `pull blob ${shortDigest(desc.digest)}`, `unexpected status ${res.status}`);
    }
    const { bytes, truncated } = await readCapped(res.body, desc.size);
    if (truncated) throw new SizeMismatchError(desc.size, desc.size + 1, `blob ${desc.digest}`);
    if (bytes.length !== desc.size) throw new SizeMismatchError(desc.size, bytes.length, `blob ${desc.digest}`);
    const actual = digestOf(bytes, digestAlgorithm(desc.digest));
    if (actual !== desc.digest) throw new DigestMismatchError(desc.digest, actual, 'blob');
    return bytes;
  } finally {
    await client.close();
  }
}

/**
 * Stream a blob from `offset` (Range when > 0; a server ignoring Range is handled by skipping). The caller verifies
 * the content. The connection is released when the stream ends or is destroyed.
 */
export async function openBlobStream(ref: Reference, desc: Descriptor, opts: RemoteOptions & { offset?: number } = {}): Promise<Readable> {
  const client = new RegistryClient(ref.registry, opts);
  const offset = opts.offset ?? 0;
  try {
    const res = await client.getBlob(ref.repository, desc.digest, { offset });
    let out: Readable = res.body;
    if (offset > 0) {
      if (res.status === 206) {
        const cr = parseContentRange(headerValue(res.headers, 'content-range'));
        if (!cr || cr.start !== offset) {
          res.body.destroy();
          throw new RegistryError(ref.registry, `pull blob ${shortDigest(desc.digest)}`, `the registry returned a different range than bytes=${offset}-`);
        }
      } else {
        out = res.body.pipe(skipBytes(offset));
        res.body.on('error', (e) => out.destroy(e));
      }
    }
    let closed = false;
    const release = () => {
      if (closed) return;
      closed = true;
      void client.close();
    };
    out.once('end', release);
    out.once('close', release);
    out.once('error', release);
    return out;
  } catch (e) {
    await client.close();
    throw e;
  }
}


/** List a repository's tags (Link paging; stops when a page adds nothing), sorted. */
export async function listTags(ref: Reference, opts: RemoteOptions = {}): Promise<string[]> {
  const client = new RegistryClient(ref.registry, opts);
  try {
    return await client.listTags(ref.repository);
  } finally {
    await client.close();
  }
}

/**
 * Check the credentials with `GET /v2/` through the full auth flow, then save them: via the configured credential
 * helper if any, else base64 in config.json `auths` (mode 0600).
 */
export async function login(registry: string, username: string, password: string, opts: RemoteOptions = {}): Promise<{ stored: 'helper' | 'config'; configPath: string }> {
  const host = normalizeRegistryKey(registry);
  if (!host) throw new ModctlError('E_USAGE', 'missing registry name', { exitCode: 2 });
  if (!username) throw new ModctlError('E_USAGE', 'missing username', { exitCode: 2 });
  const client = new RegistryClient(host, { ...opts, credentials: { username, password } });
  try {
    await client.checkLogin();
  } finally {
    await client.close();
  }
  return saveCredentials(host, username, password, opts.env ?? process.env);
}

/** Remove stored credentials (helper and config.json). */
export async function logout(registry: string, opts: RemoteOptions = {}): Promise<{ removed: boolean }> {
  const host = normalizeRegistryKey(registry);
  const r = await eraseCredentials(host, opts.env ?? process.env);
  return { removed: r.removed };
}
