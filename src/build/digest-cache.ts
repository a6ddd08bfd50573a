import { createHash } from 'node:crypto';
import { promises as fsp, type Stats } from 'node:fs';
import path from 'node:path';
import { withLock, writeFileAtomic } from '../util/fs.js';

export interface CachedDigest {
  digest: string;
  size: number;
}

/** What a layer key is derived from: the file (or directory) on disk and the path it gets in the artifact. */
export interface CacheSubject {
  absPath: string;
  relPath: string;
  stat: Stats;
  isDir: boolean;
}

/**
 * Remembers the digest of layer blobs already produced from a file, keyed on (device, inode, size, mtime, ctime,
 * path), so an unchanged rebuild neither re-reads nor re-hashes them. A hit is only used when the blob is still
 * where it is needed: in the store for a local build, on the registry (HEAD) for `build --output-remote`, `upload`
 * and `attach --output-remote`. The cache file lives in the store directory (`cache/build-digests.json`), which is
 * the only thing written there by the remote commands.
 */
export class DigestCache {
  private entries: Record<string, { digest: string; size: number; at: number }> = {};
  private dirty = false;
  private constructor(private readonly file: string) {}

  /** Load the cache of the store at `storeRoot` (the directory need not exist; nothing is created until save). */
  static async load(storeRoot: string): Promise<DigestCache> {
    const c = new DigestCache(path.join(storeRoot, 'cache', 'build-digests.json'));
    try {
      const json = JSON.parse(await fsp.readFile(c.file, 'utf8'));
      if (json && typeof json === 'object' && json.version === 1) c.entries = json.entries ?? {};
    } catch {
      // missing or unreadable cache: start empty
    }
    return c;
  }

  static key(absPath: string, st: Stats, variant = 'raw'): string {
    return `${variant}:${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}:${absPath}`;
  }

  /**
   * The key of one layer blob. A raw blob is the file's bytes, so only the file matters. A tar blob also depends on
   * the entry names (the layer's path), SOURCE_DATE_EPOCH (header mtimes) and, for a directory, every file under it:
   * pass `tree` (see `treeFingerprint`) for directories, or get `undefined` (directories are not cached without it).
   */
  static layerKey(s: CacheSubject, raw: boolean, sourceDateEpoch?: number, tree?: string): string | undefined {
    if (raw && !s.isDir) return DigestCache.key(s.absPath, s.stat, 'raw');
    if (s.isDir && !tree) return undefined;
    const variant = `tar:${sourceDateEpoch ?? ''}:${s.relPath}${s.isDir ? `:tree=${tree}` : ''}`;
    return DigestCache.key(s.absPath, s.stat, variant);
  }

  /** A fingerprint of a directory tree's listing: names, kinds, inodes, sizes, times and modes of every entry. */
  static treeFingerprint(items: ReadonlyArray<{ rel: string; stat: Stats; isDir: boolean }>): string {
    const h = createHash('sha256');
    for (const it of items) {
      const st = it.stat;
      h.update(`${it.isDir ? 'd' : 'f'}\0${it.rel}\0${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}:${st.mode}\n`);
    }
    return h.digest('hex').slice(0, 32);
  }

  get(key: string | undefined): CachedDigest | undefined {
    if (!key) return undefined;
    const e = this.entries[key];
    return e ? { digest: e.digest, size: e.size } : undefined;
  }

  set(key: string | undefined, v: CachedDigest): void {
    if (!key) return;
    this.entries[key] = { digest: v.digest, size: v.size, at: Date.now() };
    this.dirty = true;
  }

  /** Forget an entry (its blob turned out to be gone or different). */
  delete(key: string | undefined): void {
    if (!key || !(key in this.entries)) return;
    delete this.entries[key];
    this.dirty = true;
  }

  async save(): Promise<void> {
    if (!this.dirty) return;
    await fsp.mkdir(path.dirname(this.file), { recursive: true });
    await withLock(this.file + '.lock', async () => {
      let disk: Record<string, { digest: string; size: number; at: number }> = {};
      try {
        const json = JSON.parse(await fsp.readFile(this.file, 'utf8'));
        if (json?.version === 1) disk = json.entries ?? {};
      } catch {
        // nothing on disk yet
      }
      const merged = { ...disk, ...this.entries };
      // keep the cache bounded: drop the oldest entries past 20,000
      const keys = Object.keys(merged);
      if (keys.length > 20000) {
        keys.sort((a, b) => merged[a].at - merged[b].at);
        for (const k of keys.slice(0, keys.length - 20000)) delete merged[k];
      }
      await writeFileAtomic(this.file, JSON.stringify({ version: 1, entries: merged }));
    });
    this.dirty = false;
  }
}
