import { promises as fsp, type Stats } from 'node:fs';
import path from 'node:path';
import { withLock, writeFileAtomic } from '../util/fs.js';

/**
 * Remembers the digest of files already copied into the store, keyed on (device, inode, size, mtime, path), so an
 * unchanged rebuild neither re-reads nor re-hashes them. A hit is only used when the blob is still in the store.
 */
export class DigestCache {
  private entries: Record<string, { digest: string; size: number; at: number }> = {};
  private dirty = false;
  private constructor(private readonly file: string) {}

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

  get(key: string): { digest: string; size: number } | undefined {
    return this.entries[key];
  }

  set(key: string, v: { digest: string; size: number }): void {
    this.entries[key] = { ...v, at: Date.now() };
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
