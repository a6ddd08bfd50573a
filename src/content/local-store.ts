import { createReadStream, promises as fsp, constants as fsc } from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import { createWriteStream } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { HashingStream, VerifyingStream, digestHex, digestOf, isDigest } from '../oci/digest.js';
import { ANN_REF_NAME, MT_OCI_INDEX, MANIFEST_MEDIA_TYPES, MT_DOCKER_LIST } from '../oci/media-types.js';
import { formatReference, parseReference, type Reference } from '../oci/reference.js';
import { IndexSchema, type Descriptor, type Index, MAX_MANIFEST_BYTES } from '../oci/types.js';
import { ModctlError, NotFoundError } from '../errors.js';
import { withLock, writeFileAtomic } from '../util/fs.js';

/** Where the store lives: --storage-dir, then $MODCTL_STORAGE_DIR, then ~/.modctl/store. */
export function defaultStorageDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.MODCTL_STORAGE_DIR) return env.MODCTL_STORAGE_DIR;
  const home = env.HOME || os.homedir();
  return path.join(home, '.modctl', 'store');
}

export interface TaggedManifest {
  /** Full reference string as stored in org.opencontainers.image.ref.name. */
  name: string;
  ref: Reference;
  descriptor: Descriptor;
}

export interface BlobInfo {
  digest: string;
  size: number;
}

/**
 * Local content store: an OCI image layout (image-spec v1.1.1 image-layout.md).
 * - blobs/<alg>/<hex>: content, written to a temp file under ingest/, verified, then renamed (read-only).
 * - index.json: tags as org.opencontainers.image.ref.name = full reference; updated atomically under a lock.
 * - ingest/: temp files; `<hex>.partial` files survive interruption so a later pull resumes them.
 */
export class LocalStore {
  readonly root: string;
  private constructor(root: string) {
    this.root = root;
  }

  static async open(root: string): Promise<LocalStore> {
    const store = new LocalStore(path.resolve(root));
    await store.init();
    return store;
  }

  private async init(): Promise<void> {
    try {
      await fsp.mkdir(path.join(this.root, 'blobs', 'sha256'), { recursive: true });
      await fsp.mkdir(this.ingestDir, { recursive: true });
    } catch (e) {
      throw new ModctlError('E_STORE', `cannot create the local store at ${this.root}: ${(e as Error).message}`, {
        hint: 'pick a writable directory with --storage-dir or MODCTL_STORAGE_DIR',
        cause: e,
      });
    }
    const layout = path.join(this.root, 'oci-layout');
    try {
      await fsp.access(layout);
    } catch {
      await writeFileAtomic(layout, JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    }
    const index = path.join(this.root, 'index.json');
    try {
      await fsp.access(index);
    } catch {
      await withLock(this.lockPath, async () => {
        try {
          await fsp.access(index);
        } catch {
          await writeFileAtomic(index, serializeIndex({ schemaVersion: 2, mediaType: MT_OCI_INDEX, manifests: [] }));
        }
      });
    }
  }

  get ingestDir(): string {
    return path.join(this.root, 'ingest');
  }
  private get lockPath(): string {
    return path.join(this.root, 'index.json.lock');
  }

  blobPath(digest: string): string {
    if (!isDigest(digest)) throw new ModctlError('E_DIGEST_INVALID', `invalid digest ${JSON.stringify(digest)}`);
    const alg = digest.slice(0, digest.indexOf(':'));
    return path.join(this.root, 'blobs', alg, digestHex(digest));
  }

  async statBlob(digest: string): Promise<BlobInfo | undefined> {
    try {
      const st = await fsp.stat(this.blobPath(digest));
      return st.isFile() ? { digest, size: st.size } : undefined;
    } catch {
      return undefined;
    }
  }

  async hasBlob(digest: string, size?: number): Promise<boolean> {
    const st = await this.statBlob(digest);
    return !!st && (size === undefined || st.size === size);
  }

  openBlob(digest: string, opts: { start?: number; highWaterMark?: number } = {}): Readable {
    return createReadStream(this.blobPath(digest), { start: opts.start, highWaterMark: opts.highWaterMark ?? 1 << 20 });
  }

  /** Like openBlob, but a missing blob is a clear NotFoundError instead of a raw ENOENT from the stream. */
  async openExistingBlob(digest: string): Promise<Readable> {
    if (!(await this.statBlob(digest))) {
      throw new NotFoundError(`blob ${digest} is missing from the local store`, {
        hint: 'the stored artifact is incomplete (deleted or pruned blobs); pull or build it again',
      });
    }
    return this.openBlob(digest);
  }

  /** Read a small blob (manifest/config) into memory, capped. */
  async readBlob(digest: string, max = MAX_MANIFEST_BYTES): Promise<Buffer> {
    const p = this.blobPath(digest);
    let st;
    try {
      st = await fsp.stat(p);
    } catch {
      throw new NotFoundError(`blob ${digest} is not in the local store`, {
        hint: 'the store is incomplete; pull the artifact again',
      });
    }
    if (st.size > max) throw new ModctlError('E_TOO_LARGE', `blob ${digest} is ${st.size} bytes, over the ${max}-byte limit for metadata`);
    const buf = await fsp.readFile(p);
    const actual = digestOf(buf, digest.startsWith('sha512:') ? 'sha512' : 'sha256');
    if (actual !== digest) throw new ModctlError('E_STORE_CORRUPT', `blob ${digest} in the local store is corrupt (content is ${actual})`, { hint: 'run modctl prune and pull the artifact again' });
    return buf;
  }

  async readJson<T = unknown>(digest: string): Promise<T> {
    return JSON.parse((await this.readBlob(digest)).toString('utf8')) as T;
  }

  /** A fresh temp path inside the store (same filesystem as blobs, so rename is atomic). */
  tempPath(hint = 'blob'): string {
    return path.join(this.ingestDir, `tmp-${process.pid}-${randomBytes(6).toString('hex')}-${hint}`);
  }

  /** Path of the resumable partial download for a digest. */
  partialPath(digest: string): string {
    return path.join(this.ingestDir, `${digest.replace(':', '-')}.partial`);
  }

  /** Move a verified temp file into place under its digest. Caller must have verified the content. */
  async commitTemp(tmp: string, digest: string): Promise<void> {
    const dest = this.blobPath(digest);
    await fsp.mkdir(path.dirname(dest), { recursive: true });
    await fsp.chmod(tmp, 0o444).catch(() => {});
    await fsp.rename(tmp, dest);
  }

  /** Store bytes (manifest, config); returns digest and size. Idempotent. */
  async putBytes(data: Buffer, expectedDigest?: string): Promise<BlobInfo> {
    const digest = digestOf(data, expectedDigest?.startsWith('sha512:') ? 'sha512' : 'sha256');
    if (expectedDigest && digest !== expectedDigest) {
      throw new ModctlError('E_DIGEST_MISMATCH', `content digest mismatch: expected ${expectedDigest}, got ${digest}`);
    }
    if (await this.hasBlob(digest, data.length)) return { digest, size: data.length };
    const tmp = this.tempPath();
    const fh = await fsp.open(tmp, fsc.O_CREAT | fsc.O_WRONLY | fsc.O_EXCL, 0o644);
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await this.commitTemp(tmp, digest);
    return { digest, size: data.length };
  }

  /**
   * Stream content into the store: temp file, hashed (and verified when `expected` is given) while written,
   * renamed into place only after verification. On failure the temp file is removed.
   */
  async ingest(src: Readable, expected?: { digest: string; size?: number }, signal?: AbortSignal): Promise<BlobInfo> {
    const tmp = this.tempPath();
    const hasher = expected ? new VerifyingStream(expected.digest, expected.size) : new HashingStream();
    try {
      await pipeline(src, hasher, createWriteStream(tmp, { flags: 'wx', highWaterMark: 1 << 20 }), { signal });
      const digest = expected ? expected.digest : (hasher as HashingStream).digest;
      const size = hasher.size;
      await this.commitTemp(tmp, digest);
      return { digest, size };
    } catch (e) {
      await fsp.rm(tmp, { force: true });
      throw e;
    }
  }

  // ---- index.json ----

  async readIndex(): Promise<Index> {
    const raw = await fsp.readFile(path.join(this.root, 'index.json'), 'utf8');
    let json: any;
    try {
      json = JSON.parse(raw);
    } catch (e) {
      throw new ModctlError('E_STORE_CORRUPT', `${path.join(this.root, 'index.json')} is not valid JSON`, { cause: e });
    }
    // umoci init writes "manifests": null; skopeo omits mediaType: accept both.
    if (json && json.manifests === null) json.manifests = [];
    const parsed = IndexSchema.safeParse(json);
    if (!parsed.success) throw new ModctlError('E_STORE_CORRUPT', `${path.join(this.root, 'index.json')} is not an OCI index`);
    return parsed.data;
  }

  /** Read-modify-write index.json under the store lock; the write is atomic (temp + rename). */
  async updateIndex(fn: (idx: Index) => Index | void): Promise<Index> {
    return withLock(this.lockPath, async () => {
      const idx = await this.readIndex();
      const next = fn(idx) ?? idx;
      await writeFileAtomic(path.join(this.root, 'index.json'), serializeIndex(next));
      return next;
    });
  }

  async listTagged(): Promise<TaggedManifest[]> {
    const idx = await this.readIndex();
    const out: TaggedManifest[] = [];
    for (const d of idx.manifests) {
      const name = d.annotations?.[ANN_REF_NAME];
      if (!name) continue;
      let ref: Reference;
      try {
        ref = parseReference(name, { defaultTag: false });
      } catch {
        // a tag written by another tool (e.g. skopeo's bare "latest"): show it under a local pseudo-repository
        ref = { registry: 'local', repository: 'oci-layout', tag: name };
      }
      out.push({ name, ref, descriptor: d });
    }
    return out;
  }

  /**
   * Resolve a reference to a manifest descriptor: an exact ref.name match (full canonical reference), a bare name as
   * written by other tools (skopeo's `oci:dir:tag`), or a digest (`name@sha256:…` or just `sha256:…`).
   */
  async resolve(input: string): Promise<TaggedManifest> {
    const idx = await this.readIndex();
    const byName = (name: string) => idx.manifests.find((d) => d.annotations?.[ANN_REF_NAME] === name);
    const direct = byName(input);
    if (direct) return { name: input, ref: safeParse(input), descriptor: direct };
    if (isDigest(input)) {
      const d = idx.manifests.find((m) => m.digest === input) ?? (await this.descriptorForDigest(input));
      if (d) return { name: input, ref: { registry: 'local', repository: 'oci-layout', digest: input }, descriptor: d };
      throw notInStore(input);
    }
    const ref = parseReference(input);
    if (ref.digest) {
      const d = idx.manifests.find((m) => m.digest === ref.digest) ?? (await this.descriptorForDigest(ref.digest));
      if (d) return { name: formatReference(ref), ref, descriptor: { ...d, annotations: undefined } };
      throw notInStore(input);
    }
    const name = formatReference(ref);
    const d = byName(name);
    if (!d) throw notInStore(input);
    return { name, ref, descriptor: d };
  }

  private async descriptorForDigest(digest: string): Promise<Descriptor | undefined> {
    const st = await this.statBlob(digest);
    if (!st || st.size > MAX_MANIFEST_BYTES) return undefined;
    try {
      const json = JSON.parse((await this.readBlob(digest)).toString('utf8'));
      const mt = json.mediaType ?? (json.manifests ? MT_OCI_INDEX : undefined);
      if (!mt || !MANIFEST_MEDIA_TYPES.includes(mt)) return undefined;
      return { mediaType: mt, digest, size: st.size };
    } catch {
      return undefined;
    }
  }

  /** Point a reference (full canonical string) at a manifest, replacing whatever it pointed at. */
  async tag(name: string, desc: Descriptor): Promise<void> {
    const clean: Descriptor = { mediaType: desc.mediaType, digest: desc.digest, size: desc.size };
    if (desc.artifactType) clean.artifactType = desc.artifactType;
    clean.annotations = { ...(desc.annotations ?? {}), [ANN_REF_NAME]: name };
    await this.updateIndex((idx) => {
      idx.manifests = idx.manifests.filter((d) => d.annotations?.[ANN_REF_NAME] !== name);
      idx.manifests.push(clean);
    });
  }

  /** Remove a tag; returns whether it existed. */
  async untag(name: string): Promise<boolean> {
    let found = false;
    await this.updateIndex((idx) => {
      const before = idx.manifests.length;
      idx.manifests = idx.manifests.filter((d) => d.annotations?.[ANN_REF_NAME] !== name);
      found = idx.manifests.length !== before;
    });
    return found;
  }

  /** Remove every index entry for a manifest digest and delete the manifest blob; returns the removed tags. */
  async removeManifest(digest: string): Promise<string[]> {
    const removed: string[] = [];
    await this.updateIndex((idx) => {
      idx.manifests = idx.manifests.filter((d) => {
        if (d.digest !== digest) return true;
        removed.push(d.annotations?.[ANN_REF_NAME] ?? digest);
        return false;
      });
    });
    await fsp.rm(this.blobPath(digest), { force: true });
    return removed;
  }

  /** All blob digests present. */
  async listBlobs(): Promise<BlobInfo[]> {
    const out: BlobInfo[] = [];
    for (const alg of ['sha256', 'sha512']) {
      const dir = path.join(this.root, 'blobs', alg);
      let names: string[];
      try {
        names = await fsp.readdir(dir);
      } catch {
        continue;
      }
      for (const n of names) {
        const digest = `${alg}:${n}`;
        if (!isDigest(digest)) continue;
        const st = await fsp.stat(path.join(dir, n)).catch(() => undefined);
        if (st?.isFile()) out.push({ digest, size: st.size });
      }
    }
    return out;
  }

  /** Walk the DAG from every index entry; returns the set of reachable blob digests. Missing children are ignored. */
  async reachable(): Promise<Set<string>> {
    const idx = await this.readIndex();
    const seen = new Set<string>();
    const visit = async (d: Descriptor): Promise<void> => {
      if (seen.has(d.digest)) return;
      seen.add(d.digest);
      if (!isManifestType(d.mediaType)) return;
      let json: any;
      try {
        json = await this.readJson(d.digest);
      } catch {
        return;
      }
      if (json.config) await visit(json.config);
      for (const l of json.layers ?? []) await visit(l);
      for (const m of json.manifests ?? []) await visit(m);
      if (json.subject) seen.add(json.subject.digest);
    };
    for (const d of idx.manifests) await visit(d);
    return seen;
  }
}

export function isManifestType(mt: string | undefined): boolean {
  return !!mt && (MANIFEST_MEDIA_TYPES.includes(mt) || mt === MT_DOCKER_LIST);
}

function safeParse(name: string): Reference {
  try {
    return parseReference(name, { defaultTag: false });
  } catch {
    return { registry: 'local', repository: 'oci-layout', tag: name };
  }
}

function notInStore(input: string): NotFoundError {
  return new NotFoundError(`${input} is not in the local store`, {
    hint: 'run `modctl ls` to see what is there, or `modctl pull` it first',
  });
}

function serializeIndex(idx: Index): string {
  return JSON.stringify(idx, null, 2) + '\n';
}
