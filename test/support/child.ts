import type { ChildProcess } from 'node:child_process';

/**
 * The exit code (or signal) of a child, whether it has already exited or not. Waiting on `'exit'` alone hangs for a
 * child that ended before the listener was attached, and a test runner whose event loop empties cancels the rest of
 * the file.
 */
export function exitOf(child: ChildProcess): Promise<number | NodeJS.Signals | null> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  if (child.signalCode !== null) return Promise.resolve(child.signalCode);
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal)));
}
