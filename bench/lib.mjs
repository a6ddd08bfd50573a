// Shared helpers for the benchmarks: timing a command with its peak RSS, generating model files, medians.
import { spawn } from 'node:child_process';
import { existsSync, promises as fsp, openSync, writeSync, closeSync } from 'node:fs';
import { randomFillSync } from 'node:crypto';
import path from 'node:path';

export const ROOT = path.resolve(import.meta.dirname, '..');
export const BIN = path.join(ROOT, 'bin/modctl');
const TIME = existsSync('/usr/bin/time') ? '/usr/bin/time' : undefined;

/** Run a command; resolve {wall (s), rssMB (peak, from GNU time when available), code, stderr}. */
export function timed(cmd, args, opts = {}) {
  return new Promise((resolve, reject) => {
    const full = TIME ? [TIME, ['-f', 'MODCTL_BENCH_RSS_KB=%M', cmd, ...args]] : [cmd, args];
    const t0 = process.hrtime.bigint();
    const p = spawn(full[0], full[1], { stdio: ['ignore', opts.stdout ?? 'ignore', 'pipe'], env: { ...process.env, ...opts.env }, cwd: opts.cwd });
    let err = '';
    p.stderr.on('data', (c) => (err += c));
    p.on('error', reject);
    p.on('exit', (code) => {
      const wall = Number(process.hrtime.bigint() - t0) / 1e9;
      const m = /MODCTL_BENCH_RSS_KB=(\d+)/.exec(err);
      const stderr = err.replace(/MODCTL_BENCH_RSS_KB=\d+\n?/, '');
      if (code !== 0 && !opts.allowFail) reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${stderr.slice(-2000)}`));
      else resolve({ wall, rssMB: m ? Number(m[1]) / 1024 : undefined, code, stderr });
    });
  });
}

export async function sh(script, opts = {}) {
  return timed('bash', ['-c', script], opts);
}

/** Write `size` bytes of incompressible data, in 8 MiB chunks (never whole in memory). */
export function writeRandomFile(file, size) {
  const fd = openSync(file, 'w');
  const buf = Buffer.allocUnsafe(8 << 20);
  let left = size;
  while (left > 0) {
    const n = Math.min(left, buf.length);
    randomFillSync(buf, 0, n);
    writeSync(fd, buf, 0, n);
    left -= n;
  }
  closeSync(fd);
}

export async function makeModelDir(dir, { files = 4, fileSize = 512 << 20 } = {}) {
  await fsp.mkdir(dir, { recursive: true });
  for (let i = 0; i < files; i++) {
    const f = path.join(dir, `model-0000${i + 1}-of-0000${files}.safetensors`);
    if (!existsSync(f) || (await fsp.stat(f)).size !== fileSize) writeRandomFile(f, fileSize);
  }
  await fsp.writeFile(path.join(dir, 'config.json'), JSON.stringify({ model_type: 'llama', torch_dtype: 'bfloat16' }));
  await fsp.writeFile(path.join(dir, 'tokenizer.json'), JSON.stringify({ version: '1.0' }));
  await fsp.writeFile(path.join(dir, 'README.md'), '# bench model\n');
  await fsp.writeFile(
    path.join(dir, 'Modelfile'),
    'NAME bench\nARCH transformer\nFORMAT safetensors\nCONFIG config.json\nCONFIG tokenizer.json\nMODEL *.safetensors\nDOC README.md\n',
  );
}

export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export const round = (x, d = 3) => (x === undefined ? undefined : Math.round(x * 10 ** d) / 10 ** d);
