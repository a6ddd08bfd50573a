import { promises as fsp, constants as fsc } from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';

export async function exists(p: string): Promise<boolean> {
  try {
    await fsp.lstat(p);
    return true;
  } catch {
    return false;
  }
}

export function tempName(dir: string, base: string): string {
  return path.join(dir, `.${base}.modctl-tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
}

/** Write a small file atomically: temp file in the same dir, fsync, rename. */
export async function writeFileAtomic(file: string, data: string | Buffer, mode = 0o644): Promise<void> {
  const dir = path.dirname(file);
  await fsp.mkdir(dir, { recursive: true });
  const tmp = tempName(dir, path.basename(file));
  const fh = await fsp.open(tmp, fsc.O_CREAT | fsc.O_WRONLY | fsc.O_EXCL, mode);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await fsp.rename(tmp, file);
  } catch (e) {
    await fsp.rm(tmp, { force: true });
    throw e;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Cross-process lock using an exclusive lock directory. A lock older than `staleMs` whose owner process is gone is
 * broken. Used to serialise index.json updates so parallel builds into one store never lose a tag.
 */
export async function withLock<T>(lockPath: string, fn: () => Promise<T>, opts: { timeoutMs?: number; staleMs?: number } = {}): Promise<T> {
  const timeout = opts.timeoutMs ?? 60_000;
  const stale = opts.staleMs ?? 30_000;
  const start = Date.now();
  let delay = 5;
  for (;;) {
    try {
      await fsp.mkdir(lockPath);
      await fsp.writeFile(path.join(lockPath, 'owner'), `${process.pid}\n`).catch(() => {});
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      if (await isStaleLock(lockPath, stale)) {
        await fsp.rm(lockPath, { recursive: true, force: true });
        continue;
      }
      if (Date.now() - start > timeout) throw new Error(`timed out waiting for lock ${lockPath}`);
      await sleep(delay + Math.random() * delay);
      delay = Math.min(delay * 2, 200);
    }
  }
  try {
    return await fn();
  } finally {
    await fsp.rm(lockPath, { recursive: true, force: true });
  }
}

async function isStaleLock(lockPath: string, staleMs: number): Promise<boolean> {
  try {
    const owner = Number((await fsp.readFile(path.join(lockPath, 'owner'), 'utf8')).trim());
    if (owner && owner !== process.pid) {
      try {
        process.kill(owner, 0);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ESRCH') return true;
      }
    }
    const st = await fsp.stat(lockPath);
    return Date.now() - st.mtimeMs > staleMs * 10;
  } catch {
    // owner file not written yet: only stale when the directory itself is old
    try {
      const st = await fsp.stat(lockPath);
      return Date.now() - st.mtimeMs > staleMs;
    } catch {
      return false;
    }
  }
}
