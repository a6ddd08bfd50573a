// CLI conventions shared by every command: exit codes, one-line errors without stack traces, --json results and errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { runCli } from '../support/run-cli.js';
import { tmpDir } from '../support/tmp.js';
import { exitOf } from '../support/child.js';

const BIN = path.resolve(import.meta.dirname, '../../../bin/modctl');

test('usage errors exit 2: unknown command, unknown flag, missing argument, invalid reference', async () => {
  for (const args of [['bogus'], ['ls', '--bogus'], ['build'], ['inspect'], ['tag', 'a'], ['pull', 'UPPER/case:v1'], ['inspect', 'a:b:c:d']]) {
    const r = await runCli(['--storage-dir', tmpDir(), ...args]);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.ok(r.stderr.length > 0);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  }
});

test('--help and --version exit 0 and print on stdout', async () => {
  let r = await runCli(['--help']);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /build/);
  r = await runCli(['--version']);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /^\d+\.\d+\.\d+/);
  r = await runCli(['--json', 'version']);
  assert.equal(JSON.parse(r.stdout).Version.length > 0, true);
});

test('bin/modctl runs the bundle with its code cache accepted (the build trains it under the same V8 flags)', async () => {
  const run = (env: NodeJS.ProcessEnv) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [BIN, '--version'], { env: { ...process.env, ...env } });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (c) => (stdout += c));
      child.stderr.on('data', (c) => (stderr += c));
      child.on('close', (code) => resolve({ code, stdout, stderr }));
    });
  const r = await run({ MODCTL_CODE_CACHE: 'report' });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr.trim(), 'code cache: accepted');
  const version = JSON.parse(readFileSync(path.resolve(import.meta.dirname, '../../../package.json'), 'utf8')).version;
  assert.equal(r.stdout.trim(), version);
  const off = await run({ MODCTL_CODE_CACHE: '0' });
  assert.equal(off.code, 0, off.stderr);
  assert.equal(off.stdout.trim(), version, 'the same without the cache');
});

test('failures: one error line plus a hint on stderr; with --json also a JSON error on stdout', async () => {
  const store = tmpDir();
  let r = await runCli(['--storage-dir', store, 'inspect', 'example.com/none:v1']);
  assert.equal(r.code, 1);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /^error: example\.com\/none:v1 is not in the local store\nhint: /);
  r = await runCli(['--json', '--storage-dir', store, 'inspect', 'example.com/none:v1']);
  assert.equal(r.code, 1);
  assert.deepEqual(Object.keys(JSON.parse(r.stdout).error).sort(), ['code', 'exitCode', 'hint', 'message']);
  assert.equal(JSON.parse(r.stdout).error.code, 'E_NOT_FOUND');
  r = await runCli(['--json', '--storage-dir', store, 'ls']);
  assert.deepEqual(JSON.parse(r.stdout), []);
});

test('--debug shows the stack of an error', async () => {
  const r = await runCli(['--debug', '--storage-dir', tmpDir(), 'inspect', 'example.com/none:v1']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /\[debug\] NotFoundError/);
});

test('SIGINT during a long build exits 130 and leaves no temp files', async () => {
  const ctx = tmpDir('modctl-ctx-');
  const { writeFileSync, readdirSync } = await import('node:fs');
  // big enough to still be copying when the signal arrives
  const fd = (await import('node:fs')).openSync(path.join(ctx, 'big.bin'), 'w');
  (await import('node:fs')).ftruncateSync(fd, 1024 * 1024 * 1024);
  (await import('node:fs')).closeSync(fd);
  writeFileSync(path.join(ctx, 'Modelfile'), 'MODEL big.bin\n');
  const store = tmpDir();
  const child = spawn(process.execPath, [BIN, '--storage-dir', store, 'build', '-t', 'example.com/big:v1', '-f', path.join(ctx, 'Modelfile'), ctx], { stdio: 'ignore' });
  // wait until the copy into the store has started
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
    try {
      if (readdirSync(path.join(store, 'ingest')).some((n) => n.startsWith('tmp-'))) break;
    } catch {
      // store not created yet
    }
  }
  child.kill('SIGINT');
  const code = await exitOf(child);
  assert.equal(code, 130);
  const ingest = readdirSync(path.join(store, 'ingest'));
  assert.deepEqual(ingest.filter((n) => n.startsWith('tmp-')), []);
  const index = JSON.parse((await import('node:fs')).readFileSync(path.join(store, 'index.json'), 'utf8'));
  assert.deepEqual(index.manifests, [], 'nothing tagged');
});

test('extract names a blob that is missing from the store instead of failing as a bug', async () => {
  const { mkdtempSync, writeFileSync, rmSync, readFileSync } = await import('node:fs');
  const os = await import('node:os');
  const ctx = mkdtempSync(path.join(os.tmpdir(), 'modctl-ctx-'));
  writeFileSync(path.join(ctx, 'w.bin'), 'weights');
  writeFileSync(path.join(ctx, 'Modelfile'), 'MODEL w.bin\n');
  const store = tmpDir();
  let r = await runCli(['--json', '--storage-dir', store, 'build', '-t', 'example.com/miss:v1', '-f', path.join(ctx, 'Modelfile'), ctx]);
  assert.equal(r.code, 0, r.stderr);
  const digest: string = JSON.parse(r.stdout).layers[0].digest;
  rmSync(path.join(store, 'blobs/sha256', digest.slice(7)), { force: true });
  r = await runCli(['--storage-dir', store, 'extract', 'example.com/miss:v1', '--output', path.join(tmpDir(), 'o')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`blob ${digest} is missing from the local store`));
  assert.doesNotMatch(r.stderr, /bug/);
  rmSync(ctx, { recursive: true, force: true });
  void readFileSync;
});

test('a TTY without a width (e.g. under `script`) gets plain progress, not a spinner that never finishes', { timeout: 20_000 }, async () => {
  const { PassThrough } = await import('node:stream');
  const { main } = await import('../../src/cli/main.js');
  const { mkdtempSync, writeFileSync } = await import('node:fs');
  const os = await import('node:os');
  const ctx = mkdtempSync(path.join(os.tmpdir(), 'modctl-ctx-'));
  writeFileSync(path.join(ctx, 'w.bin'), Buffer.alloc(1024, 1));
  writeFileSync(path.join(ctx, 'Modelfile'), 'MODEL w.bin\n');
  const stdout = new PassThrough();
  const stderr = Object.assign(new PassThrough(), { isTTY: true, columns: 0 });
  let err = '';
  stderr.on('data', (c: Buffer) => (err += c.toString()));
  stdout.resume();
  const code = await main(['--storage-dir', tmpDir(), 'build', '-t', 'example.com/tty:v1', '-f', path.join(ctx, 'Modelfile'), ctx], {
    stdout,
    stderr,
    env: { PATH: process.env.PATH, HOME: process.env.HOME },
    cwd: () => process.cwd(),
  });
  assert.equal(code, 0, err);
  assert.ok(!err.includes('\u001b[1A'), 'no cursor-up redraws');
});
