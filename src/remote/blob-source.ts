/**
 * A blob read straight from a registry that survives the network: the returned Readable delivers the bytes from
 * `offset` to the end, and when the connection drops mid-body (reset, truncation, a retryable status on reconnect)
 * it reconnects with `Range: bytes=<delivered>-` under the client's retry policy. A server that ignores Range (200)
 * is handled by skipping the bytes already delivered. Content is NOT verified here: consumers hash what they get
 * (extract's VerifyingStream), so a corrupt body is rejected there and never lands under a final name.
 */
import { Readable } from 'node:stream';
import type { Descriptor } from '../oci/types.js';
import { AbortedError, RegistryError, isAbortError } from '../errors.js';
import type { RegistryClient } from './repository.js';
import { headerValue, discard } from './http.js';
import { parseContentRange } from './range.js';
import { retryDecision, sleep } from './retry.js';
import { shortDigest } from './errors.js';

export interface BlobSourceOptions {
  signal?: AbortSignal;
  onRetry?: (msg: string) => void;
}

export function openRemoteBlob(client: RegistryClient, repo: string, desc: Descriptor, offset = 0, opts: BlobSourceOptions = {}): Readable {
  let delivered = offset;
  let body: (AsyncIterable<Buffer> & { destroy?: (e?: Error) => void }) | undefined;
  let iterator: AsyncIterator<Buffer> | undefined;
  let attempt = 0;
  let skip = 0;
  const operation = `pull blob ${shortDigest(desc.digest)}`;

  const connect = async (): Promise<void> => {
    for (;;) {
      attempt++;
      try {
        if (opts.signal?.aborted) throw new AbortedError();
        const res = await client.getBlob(repo, desc.digest, { offset: delivered, signal: opts.signal, highWaterMark: 256 * 1024 });
        if (delivered > 0 && res.status === 206) {
          const cr = parseContentRange(headerValue(res.headers, 'content-range'));
          if (!cr || cr.start !== delivered) {
            await discard(res);
            throw new RegistryError(client.registry, operation, `the registry answered a different range than bytes=${delivered}-`);
          }
          skip = 0;
        } else if (res.status === 200) {
          skip = delivered; // Range ignored: drop what we already have
        } else {
          await discard(res);
          throw new RegistryError(client.registry, operation, `unexpected status ${res.status}`, { status: res.status });
        }
        body = res.body as any;
        iterator = (res.body as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
        return;
      } catch (e) {
        await backoff(e);
      }
    }
  };

  const backoff = async (e: unknown): Promise<void> => {
    if (isAbortError(e) || opts.signal?.aborted) throw new AbortedError();
    const status = e instanceof RegistryError ? e.status : undefined;
    const d = retryDecision(client.policy, attempt, status !== undefined ? { status } : { error: e });
    if (!d.retry) throw e;
    opts.onRetry?.(`${operation}: ${(e as Error).message}; retrying from byte ${delivered} in ${Math.round(d.delayMs)} ms`);
    await sleep(d.delayMs, opts.signal);
  };

  // 256 KiB buffers: measured the same speed as 1 MiB for 2 GiB extract-from-remote, with ~15 MB less peak RSS
  return new Readable({
    highWaterMark: 256 * 1024,
    async read() {
      try {
        for (;;) {
          if (!iterator) await connect();
          let r: IteratorResult<Buffer>;
          try {
            r = await iterator!.next();
          } catch (e) {
            body?.destroy?.();
            iterator = undefined;
            body = undefined;
            await backoff(e);
            continue;
          }
          if (r.done) {
            if (desc.size >= 0 && delivered < desc.size) {
              // the server closed cleanly but early: treat as a truncated transfer and resume
              iterator = undefined;
              body = undefined;
              await backoff(Object.assign(new Error(`connection closed after ${delivered} of ${desc.size} bytes`), { code: 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH' }));
              continue;
            }
            this.push(null);
            return;
          }
          let chunk = r.value;
          if (skip > 0) {
            if (chunk.length <= skip) {
              skip -= chunk.length;
              continue;
            }
            chunk = chunk.subarray(skip);
            skip = 0;
          }
          delivered += chunk.length;
          if (desc.size >= 0 && delivered > desc.size) {
            this.destroy(new RegistryError(client.registry, operation, `the registry sent more than the ${desc.size} bytes the manifest declares`));
            return;
          }
          attempt = 0;
          this.push(chunk);
          return;
        }
      } catch (e) {
        this.destroy(e as Error);
      }
    },
    destroy(err, cb) {
      body?.destroy?.();
      cb(err);
    },
  });
}
