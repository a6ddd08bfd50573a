#!/usr/bin/env node
// Bundles the compiled CLI (dist/src, tsc output) into dist/bundle/: one file for the CLI and one per worker thread
// entry, so `modctl` starts by loading three files instead of ~300 modules (measured: `modctl --version` 0.20 s →
// 0.13 s, 10 MB less RSS). The tsc output stays what the tests import; the bundle is what bin/modctl runs. Workers are
// found next to the bundle with the same relative names as in dist/src (`new URL('./fetch-worker.js', …)`).
// ajv is left out (loaded with require() on first use, from node_modules), as is everything in node: built-ins.
import { build } from 'esbuild';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
await build({
  absWorkingDir: root,
  entryPoints: {
    modctl: 'dist/src/cli/main.js',
    'fetch-worker': 'dist/src/remote/fetch-worker.js',
    'copy-worker': 'dist/src/build/copy-worker.js',
  },
  outdir: 'dist/bundle',
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  external: ['ajv', 'ajv/*', 'ajv-formats'],
  // CommonJS dependencies (undici, commander…) call require() for node built-ins
  banner: { js: "import { createRequire as __modctlCreateRequire } from 'node:module'; const require = __modctlCreateRequire(import.meta.url);" },
  legalComments: 'none',
  logLevel: 'warning',
});
