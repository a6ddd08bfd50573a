import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { UnsafePathError } from '../../../src/errors.js';
import {
  checkLinkTarget,
  isRootEntryPath,
  MAX_PATH_DEPTH,
  normalizeEntryPath,
  resolveEntryPath,
} from '../../../src/extract/safe-path.js';

const OUT = path.resolve('/srv/out');

function assertUnsafe(fn: () => unknown, what: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof UnsafePathError, `${what}: expected UnsafePathError, got ${String(e)}`);
    assert.equal(e.code, 'E_UNSAFE_PATH');
    return true;
  });
}

describe('resolveEntryPath', () => {
  const ok: [string, string][] = [
    ['a', 'a'],
    ['a/b/c.safetensors', 'a/b/c.safetensors'],
    ['./a//b', 'a/b'],
    ['a/./b/', 'a/b'],
    ['dir/', 'dir'],
    ['模型/权重.bin', '模型/权重.bin'],
    ['...', '...'],
    ['a..b/..c', 'a..b/..c'],
    // On POSIX a backslash is an ordinary character, not a separator.
    ['a\\..\\b', 'a\\..\\b'],
    ['.hidden/x', '.hidden/x'],
  ];
  for (const [input, rel] of ok) {
    it(`accepts ${JSON.stringify(input)} as ${rel}`, () => {
      assert.equal(normalizeEntryPath(input, { windows: false }), rel);
      assert.equal(resolveEntryPath(OUT, input, { windows: false }), path.join(OUT, ...rel.split('/')));
    });
  }

  const traversal: [string, string][] = [
    ['../evil', 'parent traversal'],
    ['a/../../x', 'traversal after a segment'],
    ['a/../b', 'inner .. (rejected even when it stays inside)'],
    ['..', 'bare ..'],
    ['./..', 'dot then ..'],
    ['a/b/..', 'trailing ..'],
  ];
  const absolute: [string, string][] = [
    ['/etc/x', 'POSIX absolute'],
    ['//etc/x', 'double-slash absolute'],
    ['C:\\x', 'Windows drive absolute'],
    ['c:/x', 'Windows drive with forward slash'],
    ['C:x', 'Windows drive-relative'],
    ['\\\\server\\share\\x', 'UNC path'],
    ['\\x', 'Windows root-relative'],
  ];
  const other: [string, string][] = [
    ['', 'empty'],
    ['.', 'dot only'],
    ['./', 'dot slash'],
    ['.//./', 'dots and slashes only'],
    ['a\0b', 'NUL byte'],
    ['a/b\0', 'trailing NUL byte'],
  ];
  for (const [input, what] of [...traversal, ...absolute, ...other]) {
    it(`refuses ${what}: ${JSON.stringify(input)}`, () => {
      assertUnsafe(() => resolveEntryPath(OUT, input, { windows: false }), what);
      assertUnsafe(() => resolveEntryPath(OUT, input, { windows: true }), `${what} (windows rules)`);
    });
  }

  it('refuses backslash traversal under Windows rules', () => {
    assertUnsafe(() => resolveEntryPath(OUT, 'a\\..\\..\\x', { windows: true }), 'backslash traversal');
    assertUnsafe(() => resolveEntryPath(OUT, 'a\\b:stream', { windows: true }), 'alternate data stream');
    assert.equal(normalizeEntryPath('a\\b\\c', { windows: true }), 'a/b/c');
  });

  it('refuses paths deeper than MAX_PATH_DEPTH', () => {
    assertUnsafe(() => resolveEntryPath(OUT, Array(MAX_PATH_DEPTH + 1).fill('d').join('/')), 'too deep');
    assert.ok(resolveEntryPath(OUT, Array(MAX_PATH_DEPTH).fill('d').join('/')).startsWith(OUT));
  });

  it('names the offending path in the error', () => {
    assert.throws(() => resolveEntryPath(OUT, '../evil'), (e: unknown) => e instanceof UnsafePathError && e.path === '../evil');
  });
});

describe('isRootEntryPath', () => {
  for (const p of ['.', './', './/.']) it(`${JSON.stringify(p)} is the root`, () => assert.equal(isRootEntryPath(p), true));
  for (const p of ['', '/', 'a', './a', '..', '/.']) it(`${JSON.stringify(p)} is not`, () => assert.equal(isRootEntryPath(p), false));
});

describe('checkLinkTarget (symlinks)', () => {
  const ok: [string, string, string][] = [
    ['link', 'target', 'target'],
    ['a/link', '../b', 'b'],
    ['a/b/link', '../../c/d', 'c/d'],
    ['a/link', '..', ''],
    ['a/link', './x/./y', 'a/x/y'],
    ['link', '.', ''],
  ];
  for (const [link, target, rel] of ok) {
    it(`allows ${link} -> ${target}`, () => {
      assert.equal(checkLinkTarget(OUT, link, target), rel ? path.join(OUT, ...rel.split('/')) : OUT);
    });
  }
  const bad: [string, string, string][] = [
    ['link', '/', 'absolute root'],
    ['link', '/etc/passwd', 'absolute file'],
    ['link', '..', 'parent of the output dir'],
    ['a/link', '../..', 'two levels up from a subdir'],
    ['a/link', '../../etc', 'escape then descend'],
    ['link', 'x/../../y', 'escape in the middle'],
    ['link', 'C:\\Windows', 'Windows absolute'],
    ['link', '\\\\server\\share', 'UNC'],
    ['link', '', 'empty target'],
    ['link', 'a\0b', 'NUL in target'],
    ['../link', 'x', 'link path itself escapes'],
    ['/link', 'x', 'link path absolute'],
  ];
  for (const [link, target, what] of bad) {
    it(`refuses ${what}: ${link} -> ${target}`, () => assertUnsafe(() => checkLinkTarget(OUT, link, target), what));
  }

  it('refuses a target that walks through a known symlink (a -> .., then b -> a/..)', () => {
    const isSymlink = (p: string) => p === 'd/a';
    // Lexically d/a/.. is d (inside), but d/a is a symlink to d/.. = the output dir, so d/a/.. is its parent.
    assertUnsafe(() => checkLinkTarget(OUT, 'd/b', 'a/..', { isSymlink }), 'through symlink');
    assertUnsafe(() => checkLinkTarget(OUT, 'd/b', 'a/x', { isSymlink }), 'into symlink');
    // Naming the symlink itself as the final component is fine: nothing is traversed.
    assert.equal(checkLinkTarget(OUT, 'd/b', 'a', { isSymlink }), path.join(OUT, 'd', 'a'));
  });
});

describe('checkLinkTarget (hardlinks)', () => {
  it('resolves hardlink targets from the archive root, not the link directory', () => {
    assert.equal(checkLinkTarget(OUT, 'a/b/link', 'x/file', { kind: 'hardlink' }), path.join(OUT, 'x', 'file'));
  });
  for (const target of ['/etc/passwd', '../x', 'a/../../x', '', '.']) {
    it(`refuses hardlink target ${JSON.stringify(target)}`, () => {
      assertUnsafe(() => checkLinkTarget(OUT, 'link', target, { kind: 'hardlink' }), target);
    });
  }
});
