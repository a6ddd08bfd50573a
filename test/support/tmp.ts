import { mkdtempSync, rmSync, mkdirSync, writeFileSync, chmodSync, existsSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after } from 'node:test';

/** A temp dir removed when the current test file finishes. */
export function tmpDir(prefix = 'modctl-test-'): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export type Tree = Record<string, string | Buffer | { content: string | Buffer; mode: number }>;

/** Write files from an object map (`a/b.txt: 'content'`), creating parent dirs. */
export function writeTree(root: string, tree: Tree): void {
  for (const [rel, v] of Object.entries(tree)) {
    const p = path.join(root, rel);
    mkdirSync(path.dirname(p), { recursive: true });
    if (typeof v === 'string' || Buffer.isBuffer(v)) writeFileSync(p, v);
    else {
      writeFileSync(p, v.content);
      chmodSync(p, v.mode);
    }
  }
}

/** Every regular file below `dir`, relative and `/`-separated, sorted (empty when `dir` does not exist). */
export function listFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath ?? (e as any).path, e.name)).split(path.sep).join('/'))
    .sort();
}
