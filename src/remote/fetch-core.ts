/**
 * The blob receive path of pulls and remote extraction, run on fetch worker threads (fetch-worker.ts): one HTTP/1.1
 * GET of a blob on its own socket, the body read straight into one reused 4 MiB buffer (`onread`), hashed and written
 * to the target file at its offset with synchronous calls — on the worker's thread, so hashing and disk writes of
 * several blobs run on several cores while the main thread only coordinates.
 *
 * Why not undici here: undici reads sockets in fresh 64 KiB buffers, copies them into its WASM parser and delivers
 * them through a stream; for 2 GiB from a local registry that measured ~1.6 s of CPU against ~0.45 s for this path
 * and twice the peak RSS (see README "Design"). Everything else — auth, redirects, retries, errors — stays with the
 * RegistryClient (undici); this module only speaks the one request it is given and reports what came back:
 *
 * - 200/206 with a usable body → the bytes land in the file (206 only when Content-Range starts at `offset`; a 200
 *   restarts the file at 0); the digest of the whole file is returned (a resumed prefix is re-hashed first);
 * - any other status (redirects, 401, errors) → status, headers and at most 8 KiB of body, nothing written;
 * - a body framed in a way this reader does not take (chunked, compressed) → 'unsupported', nothing written, so the
 *   caller uses the undici path instead;
 * - a failure mid-body → what was written stays (a valid prefix: the caller resumes from it), with the error code.
 *
 * Only node built-ins are imported: each worker thread stays small.
 */
import type * as ChildProcess from 'node:child_process';
import { createHash, type Hash } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import type * as Tls from 'node:tls';

// tls and child_process are loaded on first use (https; fallocate): every fetch worker starts with this module, and
// those two are a good part of a worker's start-up.
const tls = (): typeof Tls => process.getBuiltinModule('node:tls') as typeof Tls;
const execFile: typeof ChildProcess.execFile = ((...a: Parameters<typeof ChildProcess.execFile>) =>
  (process.getBuiltinModule('node:child_process') as typeof ChildProcess).execFile(...a)) as typeof ChildProcess.execFile;

/** What a fetch and a send job both carry: one request to `url` on its own socket, moving `file`'s bytes. */
export interface WireJob {
  url: string;
  /** Request headers (lower-case names); Host and Connection (and a send's Content-Length) are set by the worker. */
  headers: Record<string, string>;
  tls?: { ca?: string; rejectUnauthorized: boolean };
  file: string;
  /** No bytes for this long (connect included) fails the transfer. Default 300 s, as undici's body timeout. */
  idleTimeoutMs?: number;
  /** Write (fetch) or read (send) bodies of at least this many bytes with O_DIRECT where the file system takes it. */
  directIoMin?: number;
}

export interface FetchJob extends WireJob {
  /** Bytes of `file` already held (a verified-by-hash prefix is not assumed: it is re-hashed). */
  offset: number;
  /** The blob's size (from its descriptor). */
  size: number;
  alg: 'sha256' | 'sha512';
  /** Mode for a newly created file. */
  mode?: number;
  /** Reserve the file's blocks up front (Linux `fallocate --keep-size`; skipped where unavailable). */
  preallocate?: boolean;
}

export type FetchHeaders = Record<string, string | string[]>;

export type FetchOutcome =
  | { kind: 'done'; status: number; headers: FetchHeaders; digest: string; start: number; length: number; direct: boolean }
  | { kind: 'response'; status: number; headers: FetchHeaders; body: Uint8Array }
  | { kind: 'unsupported'; reason: string }
  /** `local`: decided here (the disk, the file, a size check), not a transport failure: not worth a retry as such. */
  | { kind: 'failed'; message: string; code?: string; name?: string; local?: boolean; actual?: number };

/** How a worker follows a transfer (fetch-core and send-core alike). */
export interface FetchControl {
  /** Progress: the file position written so far (fetch), or the body bytes sent (send). */
  onProgress?: (pos: number) => void;
  /** Set by the transfer: call to abort it (the outcome is then 'failed' with name AbortError). */
  abort?: () => void;
}

/**
 * The receive buffer: socket reads land here, are hashed, and go to disk in whole blocks. Measured on 2 GiB
 * (`pull --extract-from-remote`, 6 alternating runs each): 1 MiB 1.46 s, 3 MiB 1.48 s, 4 MiB 1.43 s, 8 MiB 1.50 s;
 * 4 MiB means fewer reads, hash calls and larger O_DIRECT writes, for ~12 MB more RSS with four transfers.
 */
const ACC = 4 << 20;
/** Refill the buffer only while at least this much room is left; else hash and write it first. */
const MIN_ROOM = 128 * 1024;
/** Response heads above this are refused; error bodies are kept up to MAX_ERROR_BODY. */
export const MAX_HEAD = 64 * 1024;
export const MAX_ERROR_BODY = 8 * 1024;
/** Below this, reserving blocks costs more than it saves. */
const PREALLOCATE_MIN = 64 * 1024 * 1024;
/** O_DIRECT alignment used for memory, file offsets and lengths (covers 512-byte and 4 KiB logical blocks). */
export const BLOCK = 4096;

/** Where an O_DIRECT transfer may start inside `raw`: glibc hands out big blocks at page + 16 bytes, so try that first. */
export const ALIGN_CANDIDATES = [BLOCK - 16, ...Array.from({ length: BLOCK / 16 }, (_, i) => i * 16)];

/** Parse a response head (status line and headers, without the final CRLFCRLF). */
export function parseHead(text: string): { status: number; headers: FetchHeaders } | undefined {
  const lines = text.split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})(?: .*)?$/.exec(lines[0] ?? '');
  if (!m) return undefined;
  const headers: FetchHeaders = {};
  for (const line of lines.slice(1)) {
    const i = line.indexOf(':');
    if (i <= 0) return undefined;
    const name = line.slice(0, i).trim().toLowerCase();
    const value = line.slice(i + 1).trim();
    const prev = headers[name];
    headers[name] = prev === undefined ? value : Array.isArray(prev) ? [...prev, value] : [prev, value];
  }
  return { status: Number(m[1]), headers };
}

function one(h: FetchHeaders, name: string): string | undefined {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
}

/** `bytes <start>-<end>/<total|*>` → start and total. */
function contentRange(v: string | undefined): { start: number; total?: number } | undefined {
  const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(v?.trim() ?? '');
  if (!m) return undefined;
  return { start: Number(m[1]), total: m[3] === '*' ? undefined : Number(m[3]) };
}

/** Best-effort decoding of a (small, captured) chunked error body. */
export function dechunk(b: Buffer): Buffer {
  const out: Buffer[] = [];
  let i = 0;
  while (i < b.length) {
    const eol = b.indexOf('\r\n', i, 'latin1');
    if (eol < 0) break;
    const n = parseInt(b.toString('latin1', i, eol).split(';')[0]!, 16);
    if (!Number.isFinite(n) || n <= 0) break;
    out.push(b.subarray(eol + 2, Math.min(b.length, eol + 2 + n)));
    i = eol + 2 + n + 2;
  }
  return Buffer.concat(out);
}

/**
 * The head of a one-shot HTTP/1.1 request (`connection: close`, plus `fixed` headers that `headers` cannot override).
 * Throws for a header name or value with CR or LF in it.
 */
export function requestHead(method: string, u: URL, headers: Record<string, string>, fixed: Record<string, string> = {}): string {
  let s = `${method} ${u.pathname}${u.search} HTTP/1.1\r\nhost: ${u.host}\r\nconnection: close\r\n`;
  for (const [k, v] of Object.entries(fixed)) s += `${k}: ${v}\r\n`;
  for (const [k, v] of Object.entries(headers)) {
    const name = k.toLowerCase();
    if (name === 'host' || name === 'connection' || name in fixed) continue;
    if (/[\r\n]/.test(k) || /[\r\n]/.test(v)) throw Object.assign(new Error(`invalid header ${k}`), { code: 'ERR_INVALID_CHAR' });
    s += `${name}: ${v}\r\n`;
  }
  return `${s}\r\n`;
}

/**
 * A TCP or TLS (HTTP/1.1 only) socket to the URL's host and port, no Nagle delay. With `onread`, reads land in the
 * caller's buffer instead of fresh ones.
 */
export function connectTo(u: URL, tlsOpts: { ca?: string; rejectUnauthorized: boolean } | undefined, onread?: net.OnReadOpts): net.Socket {
  const secure = u.protocol === 'https:';
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = Number(u.port) || (secure ? 443 : 80);
  const socket = secure
    ? tls().connect({
        host,
        port,
        servername: net.isIP(host) ? undefined : host,
        ca: tlsOpts?.ca,
        rejectUnauthorized: tlsOpts?.rejectUnauthorized ?? true,
        ALPNProtocols: ['http/1.1'],
        ...(onread ? { onread } : {}),
      } as Tls.ConnectionOptions)
    : net.connect({ host, port, ...(onread ? { onread } : {}) });
  socket.setNoDelay(true);
  return socket;
}

/** Hash the first `len` bytes of an open file. */
function hashPrefix(fd: number, len: number, h: Hash, buf: Buffer): void {
  let pos = 0;
  while (pos < len) {
    const n = fs.readSync(fd, buf, 0, Math.min(buf.length, len - pos), pos);
    if (n <= 0) throw Object.assign(new Error('the partial file shrank while it was read'), { code: 'E_PARTIAL_CHANGED' });
    h.update(buf.subarray(0, n));
    pos += n;
  }
}

/**
 * Open `file` (which exists) for O_DIRECT writes and find where in `raw` an O_DIRECT transfer may start: JavaScript
 * cannot ask for an aligned buffer, so candidate offsets are tried with one block written to a scratch file next to
 * `file` (never to `file` itself: a probe must not leave bytes a resume would trust). Undefined when the platform or
 * file system does not take O_DIRECT (tmpfs, some network and FUSE file systems): buffered writes are used then.
 *
 * Why: page-cache writes of fresh pages measured 0.3–5 s of kernel time per 2 GiB on the 2-core VMs we run on (the
 * hypervisor faults in every page), O_DIRECT from one reused buffer ~0.15 s; a model's weights are not re-read soon
 * after a pull either, so bypassing the cache also spares what the cache holds.
 */
function openDirect(file: string, raw: Buffer): { fd: number; align: number } | undefined {
  const { O_DIRECT, O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = fs.constants;
  if (!O_DIRECT) return undefined;
  const probe = `${file}.dio-probe`;
  let align: number | undefined;
  try {
    fs.rmSync(probe, { force: true });
    const pfd = fs.openSync(probe, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_DIRECT, 0o600);
    try {
      for (const off of ALIGN_CANDIDATES) {
        try {
          fs.writeSync(pfd, raw, off, BLOCK, 0);
          align = off;
          break;
        } catch (e) {
          if ((e as { code?: string }).code !== 'EINVAL') break;
        }
      }
    } finally {
      fs.closeSync(pfd);
      fs.rmSync(probe, { force: true });
    }
    if (align === undefined) return undefined;
    return { fd: fs.openSync(file, O_WRONLY | O_NOFOLLOW | O_DIRECT), align };
  } catch {
    return undefined;
  }
}

/**
 * Reserve the file's blocks (buffered writes only: measured 2.2 s vs 2.7 s for 2 GiB here, no gain under O_DIRECT).
 * Runs beside the writes, not before them: fallocate and write serialise on the inode, and a missing fallocate(1)
 * or a file system without it only means plain writes.
 */
function preallocate(file: string, size: number): void {
  if (process.platform !== 'linux') return;
  try {
    // --keep-size: blocks are reserved but the file length still says how much arrived (resume relies on it).
    const child = execFile('fallocate', ['--keep-size', '--length', String(size), file], { timeout: 10_000 }, () => {});
    child.unref();
  } catch {
    /* no fallocate(1) */
  }
}

export function runFetch(job: FetchJob, ctl: FetchControl = {}): Promise<FetchOutcome> {
  return new Promise<FetchOutcome>((resolve) => {
    let u: URL;
    let request: string;
    try {
      u = new URL(job.url);
      request = requestHead('GET', u, job.headers);
    } catch (e) {
      resolve({ kind: 'failed', message: (e as Error).message, code: (e as { code?: string }).code, local: true });
      return;
    }
    const secure = u.protocol === 'https:';
    // Own backing store (not the shared pool), with room to slide to an O_DIRECT-aligned start.
    const raw = Buffer.allocUnsafeSlow(ACC + BLOCK);
    let acc = raw.subarray(0, ACC);
    let filled = 0;
    let state: 'head' | 'body' | 'errbody' | 'over' = 'head';
    let status = 0;
    let headers: FetchHeaders = {};
    let expected = -1; // body bytes expected (-1: until close)
    let received = 0;
    let start = 0;
    let pos = 0;
    let fd: number | undefined;
    /** O_DIRECT descriptor of the same file, when in use: whole aligned blocks go through it, the rest through fd. */
    let dfd: number | undefined;
    let usedDirect = false;
    let hash: Hash | undefined;
    let chunked = false;

    const finish = (out: FetchOutcome) => {
      if (state === 'over') return;
      state = 'over';
      socket.destroy();
      if (dfd !== undefined) {
        try {
          fs.closeSync(dfd);
        } catch {
          /* the buffered descriptor below is synced and closed */
        }
        dfd = undefined;
      }
      const handle = fd;
      fd = undefined;
      if (handle === undefined) {
        resolve(out);
        return;
      }
      // fsync off this thread's loop (the libuv pool): the worker's other transfers keep flowing meanwhile.
      const close = (result: FetchOutcome) => fs.close(handle, () => resolve(result));
      if (out.kind !== 'done') {
        close(out);
        return;
      }
      fs.fsync(handle, (e) => {
        close(e ? { kind: 'failed', message: `syncing ${job.file}: ${e.message}`, code: e.code, local: true } : out);
      });
    };
    const fail = (e: unknown, local = false) => {
      const err = e as { message?: string; code?: string; name?: string; actual?: number };
      finish({ kind: 'failed', message: err?.message ?? String(e), code: err?.code, name: err?.name, local, actual: err?.actual });
    };

    const writeAll = (handle: number, from: number, len: number) => {
      let off = 0;
      while (off < len) off += fs.writeSync(handle, acc, from + off, len - off, pos + off);
      pos += len;
    };
    /**
     * Write acc[0, filled) at `pos` (the bytes were hashed as they arrived). With O_DIRECT only whole aligned blocks
     * go out and the rest slides to the front of the buffer, unless `all`: then the tail goes through the page cache.
     */
    const flush = (all = true): boolean => {
      if (filled === 0) return true;
      try {
        let from = 0;
        if (dfd !== undefined) {
          if (pos % BLOCK !== 0) {
            // a resumed file ends mid-block: reach the boundary with a buffered write, then realign the buffer
            const head = Math.min(filled, BLOCK - (pos % BLOCK));
            writeAll(fd!, 0, head);
            from = head;
          }
          const blocks = Math.floor((filled - from) / BLOCK) * BLOCK;
          if (blocks > 0 && from === 0) {
            try {
              writeAll(dfd, 0, blocks);
              from = blocks;
            } catch (e) {
              if ((e as { code?: string }).code !== 'EINVAL') throw e;
              fs.closeSync(dfd); // not for this file after all: buffered from here on
              dfd = undefined;
            }
          }
          if (!all && dfd !== undefined) {
            acc.copy(acc, 0, from, filled);
            filled -= from;
            if (from > 0) ctl.onProgress?.(pos);
            return true;
          }
        }
        if (filled > from) writeAll(fd!, from, filled - from);
        filled = 0;
      } catch (e) {
        fail(Object.assign(new Error(`writing ${job.file}: ${(e as Error).message}`), { code: (e as { code?: string }).code }), true);
        return false;
      }
      ctl.onProgress?.(pos);
      return true;
    };

    const beginBody = (): boolean => {
      const te = one(headers, 'transfer-encoding');
      const ce = one(headers, 'content-encoding');
      const cl = one(headers, 'content-length');
      chunked = !!te && te.toLowerCase() !== 'identity';
      if (status !== 200 && status !== 206) {
        state = 'errbody';
        expected = chunked ? -1 : cl !== undefined && /^\d+$/.test(cl) ? Number(cl) : -1;
        if (status === 204 || status === 304 || expected === 0) {
          finish({ kind: 'response', status, headers, body: new Uint8Array(0) });
          return false;
        }
        return true;
      }
      if (chunked || (ce && ce.toLowerCase() !== 'identity')) {
        finish({ kind: 'unsupported', reason: chunked ? `transfer-encoding ${te}` : `content-encoding ${ce}` });
        return false;
      }
      if (status === 206) {
        const cr = contentRange(one(headers, 'content-range'));
        if (job.offset === 0 || !cr || cr.start !== job.offset || (cr.total !== undefined && cr.total !== job.size)) {
          finish({ kind: 'response', status, headers, body: new Uint8Array(0) });
          return false;
        }
        start = job.offset;
      } else start = 0;
      expected = cl !== undefined && /^\d+$/.test(cl) ? Number(cl) : -1;
      if (expected >= 0 && start + expected !== job.size) {
        fail(Object.assign(new Error(`the registry announced ${start + expected} bytes, the manifest says ${job.size}`), { code: 'E_SIZE_MISMATCH', actual: start + expected }), true);
        return false;
      }
      try {
        hash = createHash(job.alg);
        const { O_RDWR, O_WRONLY, O_CREAT, O_TRUNC, O_NOFOLLOW } = fs.constants;
        // never through a symbolic link planted under the partial name
        fd = fs.openSync(job.file, (start > 0 ? O_RDWR : O_WRONLY | O_CREAT | O_TRUNC) | (O_NOFOLLOW ?? 0), job.mode ?? 0o666);
        if (start > 0) {
          fs.ftruncateSync(fd, start);
          // The prefix goes through the hash once, in this thread, right before the rest arrives.
          hashPrefix(fd, start, hash, Buffer.allocUnsafe(Math.min(ACC, start)));
        }
        if (job.directIoMin !== undefined && job.size - start >= job.directIoMin) {
          const d = openDirect(job.file, raw);
          if (d) {
            dfd = d.fd;
            usedDirect = true;
            // slide what arrived with the head to the aligned start
            raw.copy(raw, d.align, acc.byteOffset - raw.byteOffset, acc.byteOffset - raw.byteOffset + filled);
            acc = raw.subarray(d.align, d.align + ACC);
          }
        }
        if (!usedDirect && job.preallocate && job.size - start >= PREALLOCATE_MIN) preallocate(job.file, job.size);
      } catch (e) {
        fail(Object.assign(new Error(`opening ${job.file}: ${(e as Error).message}`), { code: (e as { code?: string }).code }), true);
        return false;
      }
      pos = start;
      state = 'body';
      if (expected === 0) {
        // nothing to read (an empty blob, or a resume that already had it all): the file is complete as it is
        finish({ kind: 'done', status, headers, digest: `${job.alg}:${hash.digest('hex')}`, start, length: pos, direct: usedDirect });
        return false;
      }
      return true;
    };

    const onBytes = (n: number) => {
      if (state === 'over') return;
      filled += n;
      if (state === 'head') {
        const end = acc.subarray(0, filled).indexOf('\r\n\r\n', 0, 'latin1');
        if (end < 0) {
          if (filled >= MAX_HEAD) fail(Object.assign(new Error('response headers over 64 KiB'), { code: 'E_HEADERS_TOO_LARGE' }));
          return;
        }
        const head = parseHead(acc.toString('latin1', 0, end));
        if (!head) return fail(Object.assign(new Error('malformed HTTP response head'), { code: 'E_BAD_RESPONSE' }));
        acc.copy(acc, 0, end + 4, filled);
        filled -= end + 4;
        if (head.status >= 100 && head.status < 200) {
          // an interim answer: the real one follows
          return onBytes(0);
        }
        status = head.status;
        headers = head.headers;
        if (!beginBody()) return;
        n = filled;
        filled = 0;
        return onBytes(n);
      }
      if (state === 'errbody') {
        if ((expected >= 0 && filled >= expected) || filled >= MAX_ERROR_BODY) {
          const b = acc.subarray(0, Math.min(filled, expected >= 0 ? expected : filled, MAX_ERROR_BODY));
          finish({ kind: 'response', status, headers, body: new Uint8Array(chunked ? dechunk(b) : Buffer.from(b)) });
        }
        return;
      }
      // body: hashed as it arrives, written in big blocks
      if (expected >= 0 && received + n > expected) {
        filled -= received + n - expected; // anything past the declared length is not ours
        n = expected - received;
      }
      if (n > 0) hash!.update(acc.subarray(filled - n, filled));
      received += n;
      if (expected >= 0 && received === expected) {
        if (flush()) finish({ kind: 'done', status, headers, digest: `${job.alg}:${hash!.digest('hex')}`, start, length: pos, direct: usedDirect });
        return;
      }
      if (expected < 0 && start + received > job.size) {
        fail(Object.assign(new Error(`the registry sent more than the ${job.size} bytes the manifest declares`), { code: 'E_SIZE_MISMATCH', actual: start + received }), true);
        return;
      }
      if (ACC - filled < MIN_ROOM) flush(false);
    };

    const onClose = () => {
      if (state === 'over') return;
      if (state === 'errbody') {
        const b = acc.subarray(0, Math.min(filled, MAX_ERROR_BODY));
        finish({ kind: 'response', status, headers, body: new Uint8Array(chunked ? dechunk(b) : Buffer.from(b)) });
      } else if (state === 'body' && expected < 0) {
        if (flush()) finish({ kind: 'done', status, headers, digest: `${job.alg}:${hash!.digest('hex')}`, start, length: pos, direct: usedDirect });
      } else if (state === 'body') {
        // keep the prefix that arrived: it is what the next attempt resumes from
        if (flush()) fail(Object.assign(new Error(`connection closed after ${pos} of ${job.size} bytes`), { code: 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH' }));
      } else fail(Object.assign(new Error('the connection closed before a response'), { code: 'ECONNRESET' }));
    };

    const onread = {
      buffer: () => acc.subarray(filled),
      callback: (n: number) => {
        onBytes(n);
        return true;
      },
    };
    const socket = connectTo(u, job.tls, onread);
    socket.setTimeout(job.idleTimeoutMs ?? 300_000, () => {
      if (state === 'body') flush();
      fail(Object.assign(new Error(`no data for ${Math.round((job.idleTimeoutMs ?? 300_000) / 1000)} s`), { code: 'UND_ERR_BODY_TIMEOUT' }));
    });
    socket.once(secure ? 'secureConnect' : 'connect', () => socket.write(request));
    socket.on('error', (e) => {
      if (state === 'body') flush();
      fail(e);
    });
    socket.on('end', onClose);
    socket.on('close', onClose);
    ctl.abort = () => {
      if (state === 'body') flush();
      fail(Object.assign(new Error('aborted'), { name: 'AbortError', code: 'ABORT_ERR' }));
    };
  });
}
