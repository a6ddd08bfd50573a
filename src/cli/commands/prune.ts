import { promises as fsp } from 'node:fs';
import path from 'node:path';
import type { CommandDefinition } from '../define.js';
import { humanBytes } from '../output.js';

/** Temp files older than this are stale (no live process is writing them); partial downloads are kept for resume. */
const STALE_TEMP_MS = 60 * 60 * 1000;

export const pruneCommand: CommandDefinition = {
  name: 'prune',
  summary: 'delete blobs no reference uses, and stale temp files',
  configure(cmd) {
    cmd.option('--dry-run', 'only list what would be deleted').option('--partials', 'also delete partial downloads kept for resuming');
  },
  async run(_args, opts, ctx) {
    const store = await ctx.store();
    const live = await store.reachable();
    const removed: Array<{ path: string; digest?: string; size: number }> = [];
    for (const b of await store.listBlobs()) {
      if (live.has(b.digest)) continue;
      removed.push({ path: store.blobPath(b.digest), digest: b.digest, size: b.size });
    }
    const now = Date.now();
    for (const name of await fsp.readdir(store.ingestDir).catch(() => [] as string[])) {
      const p = path.join(store.ingestDir, name);
      const st = await fsp.stat(p).catch(() => undefined);
      if (!st) continue;
      const partial = name.endsWith('.partial');
      if ((partial && opts.partials) || (!partial && now - st.mtimeMs > STALE_TEMP_MS)) removed.push({ path: p, size: st.size });
    }
    if (!opts.dryRun) {
      for (const r of removed) await fsp.rm(r.path, { force: true });
    }
    const total = removed.reduce((a, r) => a + r.size, 0);
    const verb = opts.dryRun ? 'Would delete' : 'Deleted';
    const lines = removed.map((r) => `${verb} ${r.digest ?? path.relative(store.root, r.path)} (${humanBytes(r.size)})`);
    lines.push(`${verb} ${removed.length} item${removed.length === 1 ? '' : 's'}, ${humanBytes(total)}`);
    return { json: { dryRun: !!opts.dryRun, removed, bytes: total }, text: lines.join('\n') };
  },
};
