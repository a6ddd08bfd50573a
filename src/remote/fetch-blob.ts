/**
 * One resumable, verified blob-to-file transfer on the fetch workers, shared by pull (into the store's partial file)
 * and remote extraction (into the output tree's partial file): the bytes already in `file` are kept and the rest
 * asked for with Range; transport failures and retryable statuses are retried under the client's policy, each time
 * from what reached the disk; a complete partial is verified without a request. The caller checks the digest it is
 * given against the descriptor and decides what to do with the file.
 */
import { promises as fsp } from 'node:fs';
import { AbortedError, DigestMismatchError, ModctlError, RegistryError, SizeMismatchError, isAbortError } from '../errors.js';
import { digestAlgorithm, digestOfFile } from '../oci/digest.js';
import type { Descriptor } from '../oci/types.js';
import { RegistryStatusError, shortDigest } from './errors.js';
import type { RegistryClient } from './repository.js';
import { retryDecision, sleep, type RetryDecision, type RetryPolicy } from './retry.js';

/** Retry or not, for an error from a blob transfer (statuses per policy, transport failures, never our own errors). */
export function blobRetryDecision(policy: RetryPolicy, attempt: number, e: unknown): RetryDecision {
  if (e instanceof RegistryStatusError && e.status !== undefined) {
    const ra = e.retryAfterMs !== undefined ? String(Math.ceil(e.retryAfterMs / 1000)) : undefined;
    return retryDecision(policy, attempt, { status: e.status, retryAfter: ra });
  }
  if (e instanceof ModctlError && !(e instanceof RegistryError && e.code === 'E_REGISTRY_UNREACHABLE')) return { retry: false, reason: 'final' };
  return retryDecision(policy, attempt, { error: e });
}

export interface FetchBlobOptions {
  file: string;
  mode?: number;
  signal?: AbortSignal;
  /** Absolute position written so far in `file`. */
  onProgress?: (pos: number) => void;
  onRetry?: (msg: string) => void;
  /** For errors: "blob" (default) or "layer". */
  what?: string;
}

/** Whether this client sends `desc` through the fetch workers. */
export function usesFetchWorkers(client: RegistryClient, desc: Descriptor): boolean {
  // smaller blobs take the keep-alive undici path: a fresh connection each would cost more than it saves
  return client.fastFetch && desc.size >= client.fastFetchMin;
}

/**
 * Receive `desc` into `file` and verify it: the bytes received over the network, or undefined when the registry's
 * answer cannot be read by the workers (nothing was written: use the undici path). Content of the wrong size or
 * digest is deleted (bytes that fail verification are worthless to resume from) and a Size/DigestMismatchError thrown.
 */
export async function fetchBlobResumable(client: RegistryClient, repo: string, desc: Descriptor, o: FetchBlobOptions): Promise<{ received: number } | undefined> {
  const signal = o.signal ?? client.signal;
  let initial: number | undefined;
  const operation = `pull blob ${shortDigest(desc.digest)}`;
  for (let attempt = 1; ; attempt++) {
    let have = await sizeOf(o.file);
    if (have > desc.size) {
      await fsp.rm(o.file, { force: true });
      have = 0;
    }
    initial ??= have;
    if (have > 0 && have === desc.size) {
      // a complete partial from an earlier run: verify it here, no request needed
      const digest = await digestOfFile(o.file, digestAlgorithm(desc.digest), signal);
      if (digest === desc.digest) {
        o.onProgress?.(have);
        return { received: 0 };
      }
      await fsp.rm(o.file, { force: true });
      have = 0;
    }
    try {
      const r = await client.fetchBlobToFile(repo, desc.digest, { file: o.file, offset: have, size: desc.size, mode: o.mode, signal, onProgress: o.onProgress });
      if (r.kind === 'unsupported') return undefined;
      if (r.kind === 'range-mismatch') {
        if (have === 0) throw new RegistryError(client.registry, operation, 'the registry answered 206 Partial Content to a full request');
        // Not the range we asked for: start clean rather than guess.
        await fsp.rm(o.file, { force: true });
        attempt--;
        continue;
      }
      const what = o.what ?? 'blob';
      if (r.length !== desc.size || r.digest !== desc.digest) {
        await fsp.rm(o.file, { force: true });
        if (r.length !== desc.size) throw new SizeMismatchError(desc.size, r.length, `${what} ${desc.digest}`);
        throw new DigestMismatchError(desc.digest, r.digest, what);
      }
      // bytes over the network: what the file gained since the first attempt (a restart from 0 counts from there)
      return { received: Math.max(0, r.length - initial) };
    } catch (e) {
      if (signal?.aborted || isAbortError(e)) throw new AbortedError();
      if (have > 0 && e instanceof RegistryError && e.status === 416) {
        // The registry says our partial is at or beyond its end: it cannot be a prefix of this blob.
        await fsp.rm(o.file, { force: true });
        continue;
      }
      const d = blobRetryDecision(client.policy, attempt, e);
      if (!d.retry) throw e;
      o.onRetry?.(`${operation}: ${(e as Error).message}; retrying in ${Math.round(d.delayMs)} ms`);
      await sleep(d.delayMs, signal);
    }
  }
}

async function sizeOf(file: string): Promise<number> {
  try {
    return (await fsp.stat(file)).size;
  } catch {
    return 0;
  }
}
