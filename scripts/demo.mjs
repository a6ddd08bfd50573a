#!/usr/bin/env node
// Quick-start demo: the whole main job on the bundled fixture model.
// build → push to a throwaway docker-registry on 127.0.0.1 → pull into a fresh store → extract → verify identical.
// Without Debian's docker-registry it says how to get one and runs the offline part (build → extract → verify).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const ROOT = path.resolve(import.meta.dirname, '..');
const BIN = path.join(ROOT, 'bin', 'modctl');
const FIXTURE = path.join(ROOT, 'fixtures', 'tiny-model');
const work = mkdtempSync(path.join(os.tmpdir(), 'modctl-demo-'));
let registry;

function step(title, args) {
  console.log(`\n$ modctl ${args.join(' ')}`);
  const r = spawnSync(process.execPath, [BIN, ...args], { stdio: 'inherit' });
  if (r.status !== 0) {
    console.error(`demo failed at: ${title} (exit ${r.status})`);
    cleanup();
    process.exit(1);
  }
}

function files(dir, base = dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? files(p, base) : [path.relative(base, p)];
  });
}

function verify(out) {
  const want = files(FIXTURE).filter((f) => f !== 'Modelfile').sort();
  const got = files(out).sort();
  if (JSON.stringify(want) !== JSON.stringify(got)) throw new Error(`file lists differ:\n want ${want}\n got  ${got}`);
  for (const f of want) {
    if (!readFileSync(path.join(FIXTURE, f)).equals(readFileSync(path.join(out, f)))) throw new Error(`${f} differs`);
    if ((statSync(path.join(FIXTURE, f)).mode & 0o777) !== (statSync(path.join(out, f)).mode & 0o777)) throw new Error(`${f} mode differs`);
  }
  console.log(`\nverified: ${want.length} files identical to ${path.relative(process.cwd(), FIXTURE) || FIXTURE} (content and mode)`);
}

function cleanup() {
  registry?.stop().catch(() => {});
  rmSync(work, { recursive: true, force: true });
}

const storeA = path.join(work, 'store-a');
const storeB = path.join(work, 'store-b');
const out = path.join(work, 'extracted');

const haveRegistry = existsSync('/usr/bin/docker-registry') || !!process.env.DOCKER_REGISTRY_BIN;
let ref = 'localhost/demo/tiny-model:v1';
if (haveRegistry) {
  const { startRegistry } = await import('../dist/test/support/registry.js');
  registry = await startRegistry();
  ref = `${registry.host}/demo/tiny-model:v1`;
  console.log(`started a throwaway docker-registry at ${registry.url}`);
} else {
  console.log('docker-registry not found: install it with `sudo apt-get install docker-registry` to run push/pull too; running the offline part.');
}

step('build', ['--storage-dir', storeA, 'build', '-t', ref, '-f', path.join(FIXTURE, 'Modelfile'), FIXTURE]);
step('inspect', ['--storage-dir', storeA, 'inspect', ref]);
if (registry) {
  step('push', ['--storage-dir', storeA, 'push', '--plain-http', ref]);
  step('pull', ['--storage-dir', storeB, 'pull', '--plain-http', ref]);
  step('extract', ['--storage-dir', storeB, 'extract', ref, '--output', out]);
} else {
  step('extract', ['--storage-dir', storeA, 'extract', ref, '--output', out]);
}
try {
  verify(out);
} catch (e) {
  console.error(`demo failed: ${e.message}`);
  cleanup();
  process.exit(1);
}
cleanup();
