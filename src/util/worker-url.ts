/**
 * The file of a worker-thread entry next to the calling module. In the tsc output (what the tests import) that is
 * `<name>.js`; scripts/bundle.mjs defines __MODCTL_WORKER_EXT__ as ".cjs" because the bundled workers are CommonJS
 * files (a worker starts ~2 ms sooner from CommonJS than through the ES module loader).
 */
declare const __MODCTL_WORKER_EXT__: string | undefined;

export function workerUrl(name: string, base: string): URL {
  const ext = typeof __MODCTL_WORKER_EXT__ === 'string' ? __MODCTL_WORKER_EXT__ : '.js';
  return new URL(`./${name}${ext}`, base);
}
