import { execFile } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import path from 'node:path';

function git(cwd: string, args: string[]): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile('git', ['-C', cwd, ...args], { timeout: 10_000, maxBuffer: 1 << 20 }, (err, stdout) => {
      resolve(err ? undefined : stdout.trim());
    });
  });
}

/** Source URL and revision of a git work tree at the context root (modctl's detection); `-dirty` when modified. */
export async function detectGitSource(contextDir: string): Promise<{ sourceURL?: string; revision?: string }> {
  try {
    await fsp.access(path.join(contextDir, '.git'));
  } catch {
    return {};
  }
  const [url, rev, status] = await Promise.all([
    git(contextDir, ['remote', 'get-url', 'origin']),
    git(contextDir, ['rev-parse', 'HEAD']),
    git(contextDir, ['status', '--porcelain', '--untracked-files=no']),
  ]);
  return {
    sourceURL: url ? redactUrl(url) : undefined,
    revision: rev ? rev + (status ? '-dirty' : '') : undefined,
  };
}

/** Drop credentials embedded in a remote URL (https://user:token@host/...). */
function redactUrl(u: string): string {
  try {
    const url = new URL(u);
    url.username = '';
    url.password = '';
    return url.toString();
  } catch {
    return u;
  }
}
