import { mkdirSync, promises as fsp, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/** Sessions older than this are not worth asking about (registries purge idle uploads after hours to a week). */
const MAX_AGE_MS = 24 * 60 * 60 * 1000;

/**
 * Open upload sessions remembered across runs (`<store>/ingest/uploads.json`), so a push that was interrupted or
 * killed resumes a partly uploaded blob: the next run asks `GET <location>` for the registry's offset and continues
 * from there. A session the registry has expired answers 404 and the upload simply restarts.
 */
export class UploadSessions {
  private entries: Record<string, { location: string; at: number }> = {};
  private constructor(private readonly file: string) {}

  static async load(file: string): Promise<UploadSessions> {
    const s = new UploadSessions(file);
    try {
      const json = JSON.parse(await fsp.readFile(file, 'utf8'));
      const now = Date.now();
      for (const [k, v] of Object.entries(json ?? {})) {
        const e = v as { location?: unknown; at?: unknown };
        if (typeof e.location === 'string' && typeof e.at === 'number' && now - e.at < MAX_AGE_MS) s.entries[k] = { location: e.location, at: e.at };
      }
    } catch {
      // no file yet, or unreadable: start empty
    }
    return s;
  }

  static key(registry: string, repo: string, digest: string): string {
    return `${registry}/${repo}@${digest}`;
  }

  get(key: string): string | undefined {
    return this.entries[key]?.location;
  }

  set(key: string, location: string): void {
    this.entries[key] = { location, at: Date.now() };
    this.flush();
  }

  delete(key: string): void {
    if (!(key in this.entries)) return;
    delete this.entries[key];
    this.flush();
  }

  /**
   * Persist now, synchronously: the newest Location must be on disk before the next request goes out, or a kill in
   * between leaves a stale one (distribution answers 404 for a stale `_state`). The file is tiny; temp + rename keeps
   * it a complete JSON document at every instant.
   */
  flush(): Promise<void> {
    try {
      mkdirSync(path.dirname(this.file), { recursive: true });
      const tmp = `${this.file}.${process.pid}.tmp`;
      writeFileSync(tmp, JSON.stringify(this.entries), { mode: 0o600 });
      renameSync(tmp, this.file);
    } catch {
      // remembering sessions is an optimisation: a failure only costs the resume
    }
    return Promise.resolve();
  }
}
