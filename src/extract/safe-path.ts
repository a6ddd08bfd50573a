/**
 * Pure path checks for extraction (no IO). Every path that comes from an artifact (a layer's filepath annotation, a
 * tar entry name, a link target) is untrusted: it must name something strictly inside the output directory.
 *
 * Policy (modelpack.md §8.2/§9 #7, style.md §1.4, after node-tar's strip-absolute-path / path-reservations):
 * - refuse instead of repairing: absolute paths (POSIX `/x`, Windows `C:\x`, `C:x`, `\\server\share`, `\x`), every
 *   `..` segment (even one that would stay inside: simple and safe), NUL bytes, empty and `.`-only paths;
 * - normalise harmless noise: `./a//b/` → `a/b`;
 * - on POSIX a backslash is an ordinary file-name character, but a name that would be absolute on Windows is refused
 *   anyway so an artifact behaves the same everywhere; on Windows backslashes are separators.
 * - a final prefix check guards against any mistake above.
 */
import path from 'node:path';
import { UnsafePathError } from '../errors.js';

/** Deeper paths are refused (node-tar uses the same cap) so a hostile archive cannot make us recurse forever. */
export const MAX_PATH_DEPTH = 1024;

export interface PathCheckOptions {
  /** Treat `\` as a separator and refuse `:` in names (Windows rules). Default: the current platform. */
  windows?: boolean;
}

const WIN_ABSOLUTE = /^(?:[a-zA-Z]:|[\\/]{2}|\\)/;

function isWindows(opts?: PathCheckOptions): boolean {
  return opts?.windows ?? process.platform === 'win32';
}

/** Reasons an entry/link path is refused before segment checks; undefined when it is acceptable so far. */
function absoluteOrBad(p: string): string | undefined {
  if (p.length === 0) return 'empty path';
  if (p.includes('\0')) return 'contains a NUL byte';
  if (p.startsWith('/')) return 'absolute path';
  if (WIN_ABSOLUTE.test(p)) return 'absolute path (Windows drive or UNC form)';
  return undefined;
}

function splitSegments(p: string, opts?: PathCheckOptions): string[] {
  const win = isWindows(opts);
  return p.split(win ? /[\\/]/ : '/');
}

/** Split and check an untrusted relative path: the clean segments, or the reason it is refused. */
function entrySegments(entryPath: string, opts?: PathCheckOptions): string[] | string {
  const bad = absoluteOrBad(entryPath);
  if (bad) return bad;
  const win = isWindows(opts);
  const out: string[] = [];
  for (const seg of splitSegments(entryPath, opts)) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') return 'contains a ".." segment';
    if (win && seg.includes(':')) return 'contains ":" (drive or stream name on Windows)';
    out.push(seg);
  }
  if (out.length === 0) return 'names the output directory itself';
  if (out.length > MAX_PATH_DEPTH) return `more than ${MAX_PATH_DEPTH} levels deep`;
  return out;
}

/**
 * Normalise an untrusted relative path to `a/b/c` form or throw UnsafePathError. The result never contains `.`,
 * `..` or empty segments and is never empty.
 */
export function normalizeEntryPath(entryPath: string, opts?: PathCheckOptions): string {
  const segs = entrySegments(entryPath, opts);
  if (typeof segs === 'string') throw new UnsafePathError(entryPath, segs);
  return segs.join('/');
}

/** True for entry names that only stand for the archive root (`.`, `./`, `.//.`): tar writers emit these for `-C dir .`. */
export function isRootEntryPath(entryPath: string): boolean {
  if (absoluteOrBad(entryPath)) return false;
  return entryPath.split('/').every((s) => s === '' || s === '.');
}

function assertInside(root: string, abs: string, original: string): void {
  if (abs === root || !abs.startsWith(root.endsWith(path.sep) ? root : root + path.sep)) {
    throw new UnsafePathError(original, 'resolves outside the output directory');
  }
}

/**
 * Absolute target for an untrusted relative path under `outputDir`, or UnsafePathError. Symlinks on disk are not
 * looked at here (no IO); callers must lstat existing parents before writing.
 */
export function resolveEntryPath(outputDir: string, entryPath: string, opts?: PathCheckOptions): string {
  const rel = normalizeEntryPath(entryPath, opts);
  const root = path.resolve(outputDir);
  const abs = path.join(root, ...rel.split('/'));
  assertInside(root, abs, entryPath);
  return abs;
}

export interface LinkCheckOptions extends PathCheckOptions {
  /**
   * `symlink` targets are relative to the link's directory; `hardlink` targets (tar `linkname`) are relative to the
   * archive root. Default `symlink`.
   */
  kind?: 'symlink' | 'hardlink';
  /**
   * Optional oracle: is this (normalised, `/`-separated, relative) path a symlink? A target that walks through a
   * symlink cannot be resolved lexically (`a -> ..` then `b -> a/..`), so such targets are refused.
   */
  isSymlink?: (relPath: string) => boolean;
}

/**
 * Check the target of a link entry at `linkPath` (an untrusted entry path). Allowed only if the target resolves,
 * lexically, to a path inside `outputDir` (the directory itself counts as inside for symlinks). Absolute targets
 * are refused. Returns the absolute resolved target.
 */
export function checkLinkTarget(outputDir: string, linkPath: string, target: string, opts: LinkCheckOptions = {}): string {
  const kind = opts.kind ?? 'symlink';
  const linkRel = normalizeEntryPath(linkPath, opts);
  const root = path.resolve(outputDir);
  const what = `${linkPath} -> ${target}`;
  if (kind === 'hardlink') {
    const segs = entrySegments(target, opts);
    if (typeof segs === 'string') throw new UnsafePathError(what, `hardlink target ${segs}`);
    const rel = segs.join('/');
    const abs = path.join(root, ...rel.split('/'));
    assertInside(root, abs, what);
    return abs;
  }
  const bad = absoluteOrBad(target);
  if (bad) throw new UnsafePathError(what, `symlink target: ${bad}`);
  const win = isWindows(opts);
  const stack = linkRel.split('/').slice(0, -1);
  const segs = splitSegments(target, opts);
  for (let i = 0; i < segs.length; i++) {
    const seg = segs[i];
    if (seg === '' || seg === '.') continue;
    if (win && seg.includes(':')) throw new UnsafePathError(what, 'symlink target contains ":"');
    if (seg === '..') {
      if (stack.length === 0) throw new UnsafePathError(what, 'symlink target escapes the output directory');
      stack.pop();
    } else {
      stack.push(seg);
    }
    const more = segs.slice(i + 1).some((s) => s !== '' && s !== '.');
    if (more && stack.length > 0 && opts.isSymlink?.(stack.join('/'))) {
      throw new UnsafePathError(what, `symlink target passes through the symlink ${stack.join('/')}`);
    }
  }
  if (stack.length > MAX_PATH_DEPTH) throw new UnsafePathError(what, `symlink target more than ${MAX_PATH_DEPTH} levels deep`);
  const abs = stack.length === 0 ? root : path.join(root, ...stack);
  if (abs !== root) assertInside(root, abs, what);
  return abs;
}
