/**
 * Files shipped with the package (package.json, spec/), found by walking up from this module to modctl's own
 * package.json: the same code runs from dist/src/… (tsc output, tests) and from dist/bundle/ (the CLI's bundle).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

let root: string | undefined;

export function packageRoot(): string {
  if (root) return root;
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    try {
      if (JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8'))?.name === 'modctl') return (root = dir);
    } catch {
      /* not here: go up */
    }
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`modctl's package.json not found above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}

/** Absolute path of a file in the package, e.g. `spec/modelpack-config-schema.json`. */
export function packageFile(rel: string): string {
  return path.join(packageRoot(), rel);
}

/** The package version, or 0.0.0 when package.json cannot be read. */
export function packageVersion(): string {
  try {
    return String(JSON.parse(readFileSync(packageFile('package.json'), 'utf8')).version ?? '0.0.0');
  } catch {
    return '0.0.0';
  }
}
