/**
 * The upload counterpart of fetch-core.ts, run on the same worker threads: one HTTP/1.1 request (a PATCH into an
 * upload session) whose body is a byte range of a local file, read into one reused 1 MiB buffer, hashed and written
 * to the socket — the next read waits until the socket has taken the previous one, so the buffer is never reused
 * early and memory does not grow with the file. It reports what the server answered (status, headers, at most 8 KiB
 * of body), the bytes sent and the digest of the range. Used by `build --output-remote`, where the digest is not
 * known until the bytes have gone by: hashing there cost the main thread ~0.7 s per 2 GiB while it also fed undici.
 * Auth, the session's Location, retries and the final PUT stay with the RegistryClient.
 */
import { createHash, type Hash } from 'node:crypto';
import fs from 'node:fs';
import { connectTo, dechunk, MAX_ERROR_BODY, MAX_HEAD, parseHead, requestHead, type FetchControl, type FetchHeaders } from './fetch-core.js';

export interface SendJob {
  method: 'PATCH' | 'PUT' | 'POST';
  url: string;
  /** Request headers (lower-case names); Host, Connection and Content-Length are set here. */
  headers: Record<string, string>;
  tls?: { ca?: string; rejectUnauthorized: boolean };
  file: string;
  start: number;
  length: number;
  alg?: 'sha256' | 'sha512';
  idleTimeoutMs?: number;
}

export type SendOutcome =
  | { kind: 'response'; status: number; headers: FetchHeaders; body: Uint8Array; sent: number; digest?: string }
  | { kind: 'failed'; message: string; code?: string; name?: string; local?: boolean; sent: number };

const BUF = 1 << 20;

export function runSend(job: SendJob, ctl: FetchControl = {}): Promise<SendOutcome> {
  return new Promise<SendOutcome>((resolve) => {
    let u: URL;
    let head: string;
    try {
      u = new URL(job.url);
      head = requestHead(job.method, u, job.headers, { 'content-length': String(job.length) });
    } catch (e) {
      resolve({ kind: 'failed', message: (e as Error).message, code: (e as { code?: string }).code, local: true, sent: 0 });
      return;
    }
    let fd: number;
    try {
      fd = fs.openSync(job.file, 'r');
    } catch (e) {
      resolve({ kind: 'failed', message: `reading ${job.file}: ${(e as Error).message}`, code: (e as { code?: string }).code, local: true, sent: 0 });
      return;
    }
    const secure = u.protocol === 'https:';
    const out = Buffer.allocUnsafeSlow(BUF);
    const hash: Hash | undefined = job.alg ? createHash(job.alg) : undefined;
    let sent = 0;
    let done = false;
    let resp = Buffer.alloc(0);
    let status = 0;
    let headers: FetchHeaders = {};
    let bodyStart = -1;
    let expected = -1;
    let chunked = false;

    const finish = (o: SendOutcome) => {
      if (done) return;
      done = true;
      socket.destroy();
      fs.close(fd, () => resolve(o));
    };
    const fail = (e: unknown, local = false) => {
      const err = e as { message?: string; code?: string; name?: string };
      finish({ kind: 'failed', message: err?.message ?? String(e), code: err?.code, name: err?.name, local, sent });
    };
    const answered = () => {
      const body = resp.subarray(bodyStart, bodyStart + Math.min(MAX_ERROR_BODY, expected >= 0 ? expected : resp.length - bodyStart));
      const digest = sent === job.length && hash ? `${job.alg}:${hash.digest('hex')}` : undefined;
      finish({ kind: 'response', status, headers, body: new Uint8Array(chunked ? dechunk(body) : Buffer.from(body)), sent, digest });
    };

    /** Read, hash and send the next piece; the next one follows when the socket has taken this one. */
    const pump = () => {
      if (done) return;
      if (sent >= job.length) return;
      let n: number;
      try {
        n = fs.readSync(fd, out, 0, Math.min(BUF, job.length - sent), job.start + sent);
      } catch (e) {
        fail(Object.assign(new Error(`reading ${job.file}: ${(e as Error).message}`), { code: (e as { code?: string }).code }), true);
        return;
      }
      if (n <= 0) {
        fail(Object.assign(new Error(`${job.file} ended ${job.length - sent} bytes early`), { code: 'E_FILE_CHANGED' }), true);
        return;
      }
      const view = out.subarray(0, n);
      hash?.update(view);
      sent += n;
      socket.write(view, (err) => {
        if (err || done) return;
        ctl.onProgress?.(sent);
        pump();
      });
    };

    const onData = (c: Buffer) => {
      if (done) return;
      resp = resp.length ? Buffer.concat([resp, c]) : Buffer.from(c);
      if (bodyStart < 0) {
        const end = resp.indexOf('\r\n\r\n', 0, 'latin1');
        if (end < 0) {
          if (resp.length > MAX_HEAD) fail(Object.assign(new Error('response headers over 64 KiB'), { code: 'E_HEADERS_TOO_LARGE' }));
          return;
        }
        const h = parseHead(resp.toString('latin1', 0, end));
        if (!h) return fail(Object.assign(new Error('malformed HTTP response head'), { code: 'E_BAD_RESPONSE' }));
        if (h.status >= 100 && h.status < 200) {
          resp = resp.subarray(end + 4);
          return onData(Buffer.alloc(0));
        }
        status = h.status;
        headers = h.headers;
        bodyStart = end + 4;
        const te = headers['transfer-encoding'];
        chunked = !!te && String(te).toLowerCase() !== 'identity';
        const cl = headers['content-length'];
        expected = !chunked && typeof cl === 'string' && /^\d+$/.test(cl) ? Number(cl) : -1;
      }
      const have = resp.length - bodyStart;
      if ((expected >= 0 && have >= expected) || have >= MAX_ERROR_BODY || (chunked && resp.includes('\r\n0\r\n\r\n', bodyStart, 'latin1'))) answered();
    };

    const socket = connectTo(u, job.tls);
    socket.setTimeout(job.idleTimeoutMs ?? 300_000, () => fail(Object.assign(new Error(`no progress for ${Math.round((job.idleTimeoutMs ?? 300_000) / 1000)} s`), { code: 'UND_ERR_BODY_TIMEOUT' })));
    socket.once(secure ? 'secureConnect' : 'connect', () => {
      socket.write(head);
      pump();
    });
    socket.on('data', onData);
    socket.on('error', (e) => fail(e));
    socket.on('close', () => {
      if (done) return;
      if (bodyStart >= 0) answered();
      else fail(Object.assign(new Error(`connection closed after ${sent} of ${job.length} bytes were sent, before an answer`), { code: 'ECONNRESET' }));
    });
    ctl.abort = () => fail(Object.assign(new Error('aborted'), { name: 'AbortError', code: 'ABORT_ERR' }));
  });
}
