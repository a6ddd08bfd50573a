/**
 * Resumable, verified blob download into the local store (registry-client.md §4). Blobs of FAST_FETCH_MIN bytes and
 * more go through the fetch workers (fetch-blob.ts, fetch-core.ts); smaller ones, and every blob when a proxy or an
 * injected dispatcher is in use, take the undici path below:
 * - bytes land in `store.partialPath(digest)`; an existing partial is re-hashed, then `Range: bytes=<have>-` is sent;
 *   only a 206 whose Content-Range starts at <have> continues it, a 200 restarts from 0 (truncate);
 * - size and digest are enforced while streaming (overlong bodies fail at once); mismatching content is deleted and
 *   never committed; the file is fsynced before `store.commitTemp()` renames it into place;
 * - throughput: no copies of our own — each socket chunk is hashed as it arrives and
 *   written as it is, gathered into 512 KiB positional writev() calls with a few in flight; the body is paused while
 *   more than 2 MiB per blob wait for the disk, so memory does not grow with blob size. (Measured on 2 GiB from a
 *   local registry: sys time 4.3 s → 1.4 s and ~35 % less wall than coalescing into our own 1 MiB buffers, whose
 *   extra copy and the stream's concatenating read() page-faulted fresh memory for every byte.)
 */
import { createHash, type Hash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { AbortedError, DigestMismatchError, RegistryError, SizeMismatchError, isAbortError } from '../errors.js';
import { digestAlgorithm, isDigest } from '../oci/digest.js';
import type { Descriptor } from '../oci/types.js';
import type { LocalStore } from '../content/local-store.js';
import type { ProgressFn } from '../util/progress.js';
import { shortDigest } from './errors.js';
import { discard, headerValue } from './http.js';
import { parseContentRange } from './range.js';
import { sleep } from './retry.js';
import { blobRetryDecision, fetchBlobResumable, usesFetchWorkers } from './fetch-blob.js';
import type { RegistryClient } from './repository.js';

const BUF = 1 << 20;

export interface DownloadOptions {
  signal?: AbortSignal;
  onProgress?: ProgressFn;
}

export function assertBlobDescriptor(d: Descriptor, registry: string): void {
  if (!isDigest(d.digest)) {
    throw new RegistryError(registry, 'pull', `unsupported or invalid digest ${JSON.stringify(d.digest)} in the manifest`, {
      hint: 'only sha256 and sha512 content can be verified',
    });
  }
  if (!Number.isSafeInteger(d.size) || d.size < 0) throw new RegistryError(registry, 'pull', `invalid size ${d.size} for ${d.digest}`);
}

/** Download one blob into the store; returns bytes transferred over the network. */
export async function downloadBlob(client: RegistryClient, store: LocalStore, repo: string, desc: Descriptor, opts: DownloadOptions = {}): Promise<{ bytesDownloaded: number }> {
  assertBlobDescriptor(desc, client.registry);
  const signal = opts.signal ?? client.signal;
  const partial = store.partialPath(desc.digest);
  await fsp.mkdir(path.dirname(partial), { recursive: true });
  const alg = digestAlgorithm(desc.digest);
  const size = desc.size;
  let bytesDownloaded = 0;
  let reported = 0;
  const progressTo = (pos: number) => {
    if (pos > reported) {
      opts.onProgress?.({ type: 'advance', id: desc.digest, bytes: pos - reported });
      reported = pos;
    }
  };
  const newHash = (): Hash => createHash(alg);
  const digestOf = (h: Hash) => `${alg}:${h.digest('hex')}`;
  let hash = newHash();

  if (usesFetchWorkers(client, desc)) {
    // The fast path: received, hashed and written on a fetch worker thread (fetch-core.ts).
    const got = await fetchBlobResumable(client, repo, desc, { file: partial, signal, onProgress: progressTo });
    if (got) {
      await store.commitTemp(partial, desc.digest);
      progressTo(size);
      return { bytesDownloaded: got.received };
    }
  }

  const once = async (): Promise<void> => {
    let have = 0;
    try {
      have = (await fsp.stat(partial)).size;
    } catch {
      have = 0;
    }
    if (have > size) {
      await fsp.rm(partial, { force: true });
      have = 0;
    }
    hash = newHash();
    try {
      if (have > 0) {
        await rehash(partial, have, hash);
      }
      if (have > 0 && have === size) {
        const d = digestOf(hash);
        if (d === desc.digest) {
          await fsyncFile(partial);
          await store.commitTemp(partial, desc.digest);
          progressTo(size);
          return;
        }
        await fsp.rm(partial, { force: true });
        have = 0;
        hash = newHash();
      }
      progressTo(have);
      let res;
      try {
        res = await client.getBlob(repo, desc.digest, { offset: have, signal });
      } catch (e) {
        if (have > 0 && e instanceof RegistryError && e.status === 416) {
          // The registry says our partial is at or beyond its end: it cannot be a prefix of this blob. Start over.
          await fsp.rm(partial, { force: true });
          hash = newHash();
          have = 0;
          res = await client.getBlob(repo, desc.digest, { offset: 0, signal });
        } else throw e;
      }
      let start = have;
      if (have > 0) {
        if (res.status === 206) {
          const cr = parseContentRange(headerValue(res.headers, 'content-range'));
          if (!cr || cr.start !== have || (cr.total !== undefined && cr.total !== size)) {
            // Not the range we asked for: start clean rather than guess.
            await discard(res);
            hash = newHash();
            await fsp.rm(partial, { force: true });
            start = 0;
            res = await client.getBlob(repo, desc.digest, { offset: 0, signal });
          }
        } else {
          // 200: the server ignored Range; the body is the whole blob.
          hash = newHash();
          start = 0;
        }
      }
      if (start === 0 && res.status === 206) {
        await discard(res);
        throw new RegistryError(client.registry, `pull blob ${shortDigest(desc.digest)}`, 'the registry answered 206 Partial Content to a full request');
      }
      const total = await writeBody(res.body, partial, start, size, hash, (n) => {
        bytesDownloaded += n;
      }, progressTo);
      if (total !== size) {
        await fsp.rm(partial, { force: true });
        throw new SizeMismatchError(size, total, `blob ${desc.digest}`);
      }
      const actual = digestOf(hash);
      if (actual !== desc.digest) {
        await fsp.rm(partial, { force: true });
        throw new DigestMismatchError(desc.digest, actual, 'blob');
      }
      await store.commitTemp(partial, desc.digest);
    } catch (e) {
      if (e instanceof SizeMismatchError || e instanceof DigestMismatchError) await fsp.rm(partial, { force: true });
      throw e;
    }
  };

  for (let attempt = 1; ; attempt++) {
    try {
      await once();
      return { bytesDownloaded };
    } catch (e) {
      if (signal?.aborted || isAbortError(e)) throw new AbortedError();
      const d = blobRetryDecision(client.policy, attempt, e);
      if (!d.retry) throw e;
      // The partial file stays: the next attempt re-hashes it and resumes with Range.
      await sleep(d.delayMs, signal);
    }
  }
}

async function rehash(file: string, have: number, hash: Hash): Promise<void> {
  const fh = await fsp.open(file, 'r');
  try {
    let pos = 0;
    const buf: Buffer = Buffer.allocUnsafeSlow(Math.min(BUF, have));
    while (pos < have) {
      const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, have - pos), pos);
      if (bytesRead <= 0) throw new Error(`partial file ${file} shrank while reading`);
      hash.update(buf.subarray(0, bytesRead));
      pos += bytesRead;
    }
  } finally {
    await fh.close();
  }
}

async function fsyncFile(file: string): Promise<void> {
  const fh = await fsp.open(file, 'r+');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Bytes gathered into one positional writev(). */
const WRITE_BATCH = 512 * 1024;
/** Bytes per blob handed to the disk but not yet written; above it the body is paused. */
const MAX_WRITE_INFLIGHT = 2 * 1024 * 1024;

/**
 * Stream `body` into `file` from byte `start` (truncating there); fails as soon as more than `size` bytes arrive and
 * returns the final length. Socket chunks go into `hash` as they arrive and are written without copying — gathered into
 * WRITE_BATCH-sized positional writev() calls, several in flight, progress reported in file order as they complete.
 */
export async function writeBody(
  body: Readable,
  file: string,
  start: number,
  size: number,
  hash: Hash,
  onNetwork: (n: number) => void,
  progressTo: (pos: number) => void,
): Promise<number> {
  const fh = await fsp.open(file, start === 0 ? 'w' : 'r+');
  try {
    if (start > 0) await fh.truncate(start);
    const total = await new Promise<number>((resolve, reject) => {
      let pos = start;
      let batch: Buffer[] = [];
      let batchBytes = 0;
      let inflight = 0;
      let pending = 0;
      let ended = false;
      let failed = false;
      /** Every write issued so far, in order; settles when they all have (rejected if one failed). */
      let ordered: Promise<void> = Promise.resolve();
      const fail = (e: unknown) => {
        if (failed) return;
        failed = true;
        body.destroy();
        // Let the writes already issued settle before the file handle is closed.
        ordered.then(
          () => reject(e),
          () => reject(e),
        );
      };
      const maybeDone = () => {
        if (ended && pending === 0 && !failed) ordered.then(() => resolve(pos), reject);
      };
      const flush = () => {
        const bufs = batch;
        const len = batchBytes;
        const at = pos - len;
        batch = [];
        batchBytes = 0;
        inflight += len;
        pending++;
        const written = (async () => {
          let off = 0;
          let list = bufs;
          while (off < len) {
            const { bytesWritten } = await fh.writev(list, at + off);
            off += bytesWritten;
            if (off < len) list = dropBytes(bufs, off);
          }
        })();
        ordered = ordered.then(() => written).then(() => progressTo(at + len));
        ordered.catch(() => {}); // observed by fail()/maybeDone()
        written.then(
          () => {
            inflight -= len;
            pending--;
            if (!failed && !ended && body.isPaused() && inflight < MAX_WRITE_INFLIGHT) body.resume();
            maybeDone();
          },
          (e) => {
            pending--;
            fail(e);
          },
        );
      };
      body.on('data', (chunk: Buffer) => {
        if (failed) return;
        onNetwork(chunk.length);
        if (pos + chunk.length > size) return fail(new SizeMismatchError(size, pos + chunk.length, 'blob'));
        pos += chunk.length;
        hash.update(chunk);
        batch.push(chunk);
        batchBytes += chunk.length;
        if (batchBytes >= WRITE_BATCH) {
          flush();
          if (inflight >= MAX_WRITE_INFLIGHT) body.pause();
        }
      });
      body.once('end', () => {
        if (failed) return;
        if (batchBytes > 0) flush();
        ended = true;
        maybeDone();
      });
      body.once('error', fail);
      body.once('close', () => {
        if (!ended) fail(new Error('the response body closed before its end'));
      });
      // Destroyed while the file was being opened (an abort when a sibling blob failed): its 'close' has been and
      // gone, and waiting for it would wait forever.
      if (body.destroyed) fail(body.errored ?? new Error('the response body closed before its end'));
    });
    await fh.sync();
    return total;
  } finally {
    await fh.close();
  }
}

/** `bufs` without their first `off` bytes (after a short writev). */
function dropBytes(bufs: Buffer[], off: number): Buffer[] {
  const out: Buffer[] = [];
  for (const b of bufs) {
    if (off >= b.length) off -= b.length;
    else {
      out.push(off > 0 ? b.subarray(off) : b);
      off = 0;
    }
  }
  return out;
}

