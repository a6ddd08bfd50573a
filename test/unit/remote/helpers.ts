/** Shared setup for the remote client tests: temp dirs, a local store with an artifact, a short keep-alive agent. */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { Agent } from 'undici';
import { LocalStore } from '../../../src/content/local-store.js';
import { MT_MODEL_CONFIG, MT_OCI_MANIFEST, MT_OCI_INDEX, ANN_TITLE } from '../../../src/oci/media-types.js';
import type { Descriptor } from '../../../src/oci/types.js';
import type { TransferOptions } from '../../../src/remote/index.js';

export async function tmpDir(t: { after: (fn: () => Promise<void> | void) => void }, prefix = 'modctl-remote-'): Promise<string> {
  const d = await mkdtemp(path.join(os.tmpdir(), prefix));
  t.after(() => rm(d, { recursive: true, force: true }));
  return d;
}

/** A keep-alive agent that lets go of sockets within 10 ms so the suite never hangs. */
export function testAgent(t: { after: (fn: () => Promise<void> | void) => void }): Agent {
  const a = new Agent({ keepAliveTimeout: 10, keepAliveMaxTimeout: 10 });
  t.after(() => a.close());
  return a;
}

export function baseOpts(dispatcher: Agent, home: string, extra: Partial<TransferOptions> = {}): TransferOptions {
  return {
    plainHttp: true,
    dispatcher,
    env: { HOME: home, MODCTL_RETRY_BASE_MS: '1', PATH: process.env.PATH },
    ...extra,
  };
}

/** Deterministic pseudo-random bytes (fast, no crypto). */
export function bytes(n: number, seed = 1): Buffer {
  const b = Buffer.allocUnsafe(n);
  let x = seed * 2654435761 >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}

export interface LocalArtifact {
  store: LocalStore;
  name: string;
  manifest: Descriptor;
  manifestBytes: Buffer;
  config: Descriptor;
  layers: Descriptor[];
}

/** Put blobs + config + manifest into a store and tag them `name`. */
export async function makeArtifact(root: string, name: string, layerData: Buffer[]): Promise<LocalArtifact> {
  const store = await LocalStore.open(root);
  const layers: Descriptor[] = [];
  for (const [i, data] of layerData.entries()) {
    const info = data.length > 4 * 1024 * 1024 ? await store.ingest(Readable.from([data])) : await store.putBytes(data);
    layers.push({ mediaType: 'application/vnd.cncf.model.weight.v1.raw', digest: info.digest, size: info.size, annotations: { [ANN_TITLE]: `file${i}.bin` } });
  }
  const cfgBytes = Buffer.from(JSON.stringify({ descriptor: { name }, modelfs: { type: 'layers', diffIds: layers.map((l) => l.digest) }, config: {} }));
  const cfg = await store.putBytes(cfgBytes);
  const config: Descriptor = { mediaType: MT_MODEL_CONFIG, digest: cfg.digest, size: cfg.size };
  const manifestBytes = Buffer.from(
    JSON.stringify({ schemaVersion: 2, mediaType: MT_OCI_MANIFEST, artifactType: 'application/vnd.cncf.model.manifest.v1+json', config, layers }),
  );
  const m = await store.putBytes(manifestBytes);
  const manifest: Descriptor = { mediaType: MT_OCI_MANIFEST, digest: m.digest, size: m.size };
  await store.tag(name, manifest);
  return { store, name, manifest, manifestBytes, config, layers };
}

export { MT_OCI_INDEX, MT_OCI_MANIFEST };
