#!/usr/bin/env node
// Build benchmark: a 2 GiB model dir (4 × 512 MiB + small files) built by modctl, beside the naive two-pass way with
// standard tools (`cp -r` then `openssl dgst -sha256` of the copies), alternated RUNS times; prints JSON with the
// median ratio (disk write-back makes single runs noisy), peak RSS, and an unchanged rebuild.
// Usage: node bench/build.mjs [--runs N] [--size-mib M]   (work dir: $BENCH_DIR or .bench/)
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { BIN, ROOT, makeModelDir, median, round, sh, timed } from './lib.mjs';

const args = process.argv.slice(2);
const runs = Number(args[args.indexOf('--runs') + 1]) || 3;
const sizeMiB = Number(args[args.indexOf('--size-mib') + 1]) || 512;
const work = process.env.BENCH_DIR || path.join(ROOT, '.bench');
const model = path.join(work, 'model');
await makeModelDir(model, { files: 4, fileSize: sizeMiB << 20 });

const rows = [];
for (let i = 0; i < runs; i++) {
  const store = path.join(work, `store-${i}`);
  const copy = path.join(work, `copy-${i}`);
  await fsp.rm(store, { recursive: true, force: true });
  await fsp.rm(copy, { recursive: true, force: true });
  await sh('sync');
  const base = await sh(`cp -r '${model}' '${copy}' && openssl dgst -sha256 '${copy}'/*.safetensors > /dev/null`);
  await sh('sync');
  const b = await timed(process.execPath, [BIN, '--no-progress', '--storage-dir', store, 'build', '-t', 'bench.local/model:v1', '-f', path.join(model, 'Modelfile'), model]);
  await sh('sync');
  const re = await timed(process.execPath, [BIN, '--no-progress', '--storage-dir', store, 'build', '-t', 'bench.local/model:v1', '-f', path.join(model, 'Modelfile'), model]);
  rows.push({ baseline: base.wall, build: b.wall, ratio: b.wall / base.wall, rebuild: re.wall, buildRssMB: b.rssMB, rebuildRssMB: re.rssMB });
  await fsp.rm(store, { recursive: true, force: true });
  await fsp.rm(copy, { recursive: true, force: true });
}
const out = {
  benchmark: 'build',
  bytes: 4 * (sizeMiB << 20),
  runs: rows.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, round(v)]))),
  median: {
    baselineSeconds: round(median(rows.map((r) => r.baseline))),
    buildSeconds: round(median(rows.map((r) => r.build))),
    ratio: round(median(rows.map((r) => r.ratio))),
    rebuildSeconds: round(median(rows.map((r) => r.rebuild))),
    peakRssMB: round(Math.max(...rows.map((r) => r.buildRssMB ?? 0)), 1),
  },
  targets: { ratio: '<= 1.0', peakRssMB: '<= 150', rebuild: 'much faster than the first build' },
  baseline: 'cp -r <dir> <copy> && openssl dgst -sha256 <copy>/*',
};
console.log(JSON.stringify(out, null, 2));
