import { promises as fsp, type Stats } from 'node:fs';
import path from 'node:path';
import picomatch from 'picomatch';
import { ModctlError } from '../errors.js';
import type { FileKind, FilePattern } from '../modelfile/index.js';

/** One thing to pack: a file (raw or tar layer) or a directory (one tar layer of its tree). */
export interface SourceEntry {
  kind: FileKind;
  /** Context-relative, `/`-separated path: the layer's filepath annotation. */
  relPath: string;
  absPath: string;
  isDir: boolean;
  stat: Stats;
}

/** Scheduling weight of an entry for mapLimit's largest-first order: a file's size; directories keep list order. */
export const entrySize = (e: SourceEntry): number => (e.isDir ? 0 : e.stat.size);

export interface ResolveResult {
  entries: SourceEntry[];
  warnings: string[];
}

/** Processor order (modctl: CONFIG → MODEL → CODE → DOC; we add DATASET last). */
export const KIND_ORDER: readonly FileKind[] = ['config', 'model', 'code', 'doc', 'dataset'];

const GLOB_CHARS = /[*?[\]{}]/;
/** Never matched by a glob (a literal path still can name them). */
const GLOB_SKIP = new Set(['.git', '.modctl']);

function toPosix(p: string): string {
  return p.split(path.sep).join('/');
}

/**
 * Turn Modelfile patterns into a sorted, de-duplicated list of files and directories inside the context.
 * - literal paths must exist (error otherwise); globs that match nothing give a warning; `**` crosses directories;
 * - symlinks are followed only when their real target stays inside the context;
 * - a path matched by several instructions is kept once, under the first kind in processor order (warning).
 */
export async function resolveSources(contextDir: string, patterns: FilePattern[]): Promise<ResolveResult> {
  const ctx = await fsp.realpath(contextDir).catch((e) => {
    throw new ModctlError('E_CONTEXT', `build context ${contextDir} is not readable: ${(e as Error).message}`);
  });
  const ctxStat = await fsp.stat(ctx);
  if (!ctxStat.isDirectory()) throw new ModctlError('E_CONTEXT', `build context ${contextDir} is not a directory`);

  const warnings: string[] = [];
  const errors: string[] = [];
  const byPath = new Map<string, SourceEntry>();
  const ordered = [...patterns].sort((a, b) => KIND_ORDER.indexOf(a.kind) - KIND_ORDER.indexOf(b.kind));
  let tree: Array<{ rel: string; abs: string; stat: Stats }> | undefined;

  const add = (kind: FileKind, rel: string, abs: string, stat: Stats, pattern: FilePattern) => {
    const prev = byPath.get(rel);
    if (prev) {
      if (prev.kind !== kind) {
        warnings.push(`${rel} is matched by ${kind.toUpperCase()} ${JSON.stringify(pattern.pattern)} (line ${pattern.span.line}) but already packed as ${prev.kind.toUpperCase()}; keeping ${prev.kind.toUpperCase()}`);
      }
      return;
    }
    byPath.set(rel, { kind, relPath: rel, absPath: abs, isDir: stat.isDirectory(), stat });
  };

  for (const p of ordered) {
    const raw = p.pattern;
    if (!GLOB_CHARS.test(raw)) {
      const abs = path.resolve(ctx, raw);
      const checked = await checkInside(ctx, abs, raw);
      if ('error' in checked) {
        errors.push(`line ${p.span.line}: ${checked.error}`);
        continue;
      }
      add(p.kind, checked.rel, checked.abs, checked.stat, p);
      continue;
    }
    let pat = raw;
    if (path.isAbsolute(pat)) {
      const rel = path.relative(ctx, pat);
      if (rel.startsWith('..') || path.isAbsolute(rel)) {
        errors.push(`line ${p.span.line}: pattern ${JSON.stringify(raw)} is outside the build context ${contextDir}`);
        continue;
      }
      pat = toPosix(rel);
    }
    pat = pat.replace(/^\.\//, '');
    tree ??= await walk(ctx);
    // Go filepath.Glob semantics: `*` does not cross `/`, and it does match a leading dot.
    const isMatch = picomatch(pat, { dot: true, strictSlashes: true });
    // `**` patterns select files only (a directory there would swallow the files it also matches).
    const filesOnly = pat.includes('**');
    let matched = 0;
    for (const e of tree) {
      if (filesOnly && e.stat.isDirectory()) continue;
      if (isMatch(e.rel)) {
        matched++;
        add(p.kind, e.rel, e.abs, e.stat, p);
      }
    }
    if (matched === 0) warnings.push(`line ${p.span.line}: ${p.kind.toUpperCase()} ${JSON.stringify(raw)} matches no files`);
  }
  if (errors.length) {
    throw new ModctlError('E_SOURCE', errors.length === 1 ? errors[0] : `${errors.length} problems with Modelfile paths:\n  ${errors.join('\n  ')}`, {
      hint: `paths in the Modelfile are relative to the build context (${contextDir})`,
    });
  }

  const entries = [...byPath.values()];
  // A file inside a directory that is packed as a whole would be packed twice.
  const dirs = entries.filter((e) => e.isDir).map((e) => e.relPath + '/');
  const kept = entries.filter((e) => {
    const parent = dirs.find((d) => e.relPath.startsWith(d));
    if (parent) {
      warnings.push(`${e.relPath} is already inside directory layer ${parent.slice(0, -1)}; not packing it twice`);
      return false;
    }
    return true;
  });
  kept.sort((a, b) => KIND_ORDER.indexOf(a.kind) - KIND_ORDER.indexOf(b.kind) || cmpBytes(a.relPath, b.relPath));
  return { entries: kept, warnings };
}

export function cmpBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

async function checkInside(ctx: string, abs: string, raw: string): Promise<{ rel: string; abs: string; stat: Stats } | { error: string }> {
  const rel = path.relative(ctx, abs);
  if (rel === '' || rel.startsWith('..' + path.sep) || rel === '..' || path.isAbsolute(rel)) {
    return { error: `${JSON.stringify(raw)} is outside the build context` };
  }
  let real: string;
  try {
    real = await fsp.realpath(abs);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      const l = await fsp.lstat(abs).catch(() => undefined);
      return { error: l?.isSymbolicLink() ? `${JSON.stringify(raw)} is a dangling symlink` : `file specified in Modelfile does not exist: ${raw}` };
    }
    return { error: `cannot read ${JSON.stringify(raw)}: ${(e as Error).message}` };
  }
  const realRel = path.relative(ctx, real);
  if (realRel.startsWith('..') || path.isAbsolute(realRel)) {
    return { error: `${JSON.stringify(raw)} is a symlink that leads outside the build context (to ${real})` };
  }
  const stat = await fsp.stat(real);
  if (!stat.isFile() && !stat.isDirectory()) return { error: `${JSON.stringify(raw)} is not a regular file or directory` };
  return { rel: toPosix(rel), abs: real, stat };
}

/**
 * Every file and directory under the context (relative paths), following symlinks that stay inside; symlinks that
 * leave the context, dangling links and special files are left out. `.git` and `.modctl` are not descended into.
 */
async function walk(ctx: string): Promise<Array<{ rel: string; abs: string; stat: Stats }>> {
  const out: Array<{ rel: string; abs: string; stat: Stats }> = [];
  const visiting = new Set<string>();
  const visit = async (dirAbs: string, dirRel: string, realDir: string): Promise<void> => {
    if (visiting.has(realDir)) return; // symlink loop
    visiting.add(realDir);
    const names = (await fsp.readdir(dirAbs)).sort(cmpBytes);
    for (const name of names) {
      if (GLOB_SKIP.has(name)) continue;
      const abs = path.join(dirAbs, name);
      const rel = dirRel ? `${dirRel}/${name}` : name;
      const l = await fsp.lstat(abs);
      let real = abs;
      let st = l;
      if (l.isSymbolicLink()) {
        try {
          real = await fsp.realpath(abs);
        } catch {
          continue;
        }
        const rr = path.relative(ctx, real);
        if (rr.startsWith('..') || path.isAbsolute(rr)) continue;
        st = await fsp.stat(real);
      }
      if (st.isDirectory()) {
        out.push({ rel, abs: real, stat: st });
        await visit(abs, rel, real);
      } else if (st.isFile()) {
        out.push({ rel, abs: real, stat: st });
      }
    }
    visiting.delete(realDir);
  };
  await visit(ctx, '', ctx);
  return out;
}
