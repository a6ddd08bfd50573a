import type { Readable, Writable } from 'node:stream';
import { LocalStore, defaultStorageDir } from '../content/local-store.js';
import type { ProgressFn } from '../util/progress.js';

/** What main() is given instead of touching `process` directly (tests inject their own). */
export interface CliIO {
  stdout: Writable & { isTTY?: boolean; columns?: number };
  stderr: Writable & { isTTY?: boolean; columns?: number };
  stdin?: Readable;
  env: NodeJS.ProcessEnv;
  cwd: () => string;
  /** Install signal handlers (real process only). */
  on?: (ev: 'SIGINT' | 'SIGTERM', fn: () => void) => unknown;
  off?: (ev: 'SIGINT' | 'SIGTERM', fn: () => void) => unknown;
}

export interface GlobalOptions {
  storageDir?: string;
  json?: boolean;
  progress?: boolean;
  debug?: boolean;
  color?: boolean;
}

export interface CliContext {
  io: CliIO;
  env: NodeJS.ProcessEnv;
  cwd: string;
  signal: AbortSignal;
  json: boolean;
  debug: boolean;
  /** Progress sink for core operations (no-op when progress is off). */
  progress: ProgressFn;
  warn: (msg: string) => void;
  info: (msg: string) => void;
  storageDir: string;
  store: () => Promise<LocalStore>;
}

export function makeStoreOpener(dir: string): () => Promise<LocalStore> {
  let p: Promise<LocalStore> | undefined;
  return () => (p ??= LocalStore.open(dir));
}

export function storageDirFrom(opts: GlobalOptions, env: NodeJS.ProcessEnv): string {
  return opts.storageDir || defaultStorageDir(env);
}
