// Loads the bundled CLI (dist/bundle/modctl.cjs, built by scripts/bundle.mjs) with V8's code cache next to it
// (modctl.cjs.cache, written at build time by a training run): V8 then skips parsing and compiling what the cache
// holds, ~20 ms of every start-up. A cache that does not fit (another Node, other V8 flags, a rebuilt bundle) is
// rejected by V8 and the bundle compiles as usual. Used by bin/modctl, and by scripts/bundle.mjs to write the cache.
import { readFileSync } from 'node:fs';
import Module, { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import vm from 'node:vm';

export const BUNDLE = fileURLToPath(new URL('../dist/bundle/modctl.cjs', import.meta.url));
export const CODE_CACHE = `${BUNDLE}.cache`;

/**
 * The bundle's exports, and its compiled script (for createCachedData). Throws ENOENT when there is no bundle.
 * `useCache: false` compiles without the cache (the build does, to write a fresh one).
 */
export function loadBundle({ useCache = true } = {}) {
  const source = readFileSync(BUNDLE, 'utf8');
  let cachedData;
  if (useCache) {
    try {
      cachedData = readFileSync(CODE_CACHE);
    } catch {
      // no cache: compile as usual
    }
  }
  const script = new vm.Script(Module.wrap(source), { filename: BUNDLE, cachedData });
  const module = { exports: {} };
  script.runInThisContext()(module.exports, createRequire(BUNDLE), module, BUNDLE, path.dirname(BUNDLE));
  return { exports: module.exports, script, cacheRejected: cachedData ? script.cachedDataRejected === true : undefined };
}
