/**
 * A streaming HTTP reverse proxy on 127.0.0.1 that injects faults into selected requests.
 *
 *   const proxy = await startFaultProxy(reg.url, { match: { method: 'GET', path: /\/blobs\// },
 *                                                   fault: { kind: 'reset-after', bytes: 1000 } });
 *
 * - Bodies are streamed both ways (no buffering); headers are preserved (duplicates included). The upstream sees
 *   `Host: <target host>`, and absolute `Location` headers pointing at the target are rewritten to the proxy.
 * - Rules are checked in order against every request: `match.method` (case-insensitive) and `match.path` (a RegExp
 *   tested against the request target, i.e. path plus query). Every rule that matches counts the request; the first
 *   rule whose window `skip <= count < skip + times` is open applies its fault (`times` default 1; `Infinity` = always).
 * - `setPlan()` replaces the rules and resets their counters; `requests` logs every request with the status sent
 *   (0 when the connection was cut before a status line) and the fault applied.
 */
import { Agent, createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { registerExitCleanup } from './tls.js';

export type Fault =
  /** Answer this status without contacting the upstream (the request body is drained first). */
  | { kind: 'status'; status: number; headers?: Record<string, string>; body?: string | Uint8Array }
  /** Forward headers and the first `bytes` body bytes, then destroy the client socket abruptly. */
  | { kind: 'reset-after'; bytes: number }
  /** Keep the upstream Content-Length but end the body (graceful FIN) after `bytes` bytes. */
  | { kind: 'truncate-after'; bytes: number }
  /** Flip every bit of the body byte at offset `atByte` (length unchanged). */
  | { kind: 'corrupt'; atByte: number }
  /** Throttle the response body to about `bytesPerSec`. */
  | { kind: 'trickle'; bytesPerSec: number }
  /** Read and discard the request without forwarding it or ever answering. */
  | { kind: 'hang' }
  /** Uploads: forward `bytes` request-body bytes upstream, then destroy both connections. */
  | { kind: 'reset-request-after'; bytes: number };

export interface FaultRule {
  match?: { method?: string; path?: RegExp };
  /** How many matching requests get the fault. Default 1. */
  times?: number;
  /** Let the first N matching requests through. Default 0. */
  skip?: number;
  fault: Fault;
}

export type FaultPlan = FaultRule | FaultRule[];

export interface ProxyRequestRecord {
  method: string;
  /** Request target as received (path and query). */
  path: string;
  /** Status sent to the client; 0 if none was sent. */
  status: number;
  /** The request's Range header, if any (to observe resumed downloads). */
  range?: string;
  /** Kind of the fault applied to this request, if any. */
  fault?: Fault['kind'];
}

export interface FaultProxy {
  /** "127.0.0.1:PORT" */
  host: string;
  /** http://host */
  url: string;
  requests: ProxyRequestRecord[];
  setPlan(plan?: FaultPlan): void;
  stop(): Promise<void>;
}

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'upgrade',
]);

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Writes with backpressure; rejects if the client went away. */
function writeChunk(res: ServerResponse, buf: Buffer): Promise<void> {
  if (res.destroyed) return Promise.reject(new Error('client closed'));
  if (res.write(buf)) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const onDrain = (): void => {
      res.off('close', onClose);
      resolve();
    };
    const onClose = (): void => {
      res.off('drain', onDrain);
      reject(new Error('client closed'));
    };
    res.once('drain', onDrain);
    res.once('close', onClose);
  });
}

/** Writes and waits until the bytes have been handed to the kernel. */
function writeFlushed(res: ServerResponse, buf: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    if (res.destroyed) {
      reject(new Error('client closed'));
      return;
    }
    res.write(buf, (err) => (err ? reject(err) : resolve()));
  });
}

export async function startFaultProxy(target: string, plan?: FaultPlan): Promise<FaultProxy> {
  const t = new URL(target);
  if (t.protocol !== 'http:') throw new Error(`fault proxy supports http:// targets only, got ${target}`);
  const targetOrigin = t.origin;
  const targetHost = t.host;
  const agent = new Agent({ keepAlive: true });
  const requests: ProxyRequestRecord[] = [];
  let rules: Array<{ rule: FaultRule; count: number }> = [];
  let proxyOrigin = '';

  const setPlan = (p?: FaultPlan): void => {
    const list = p === undefined ? [] : Array.isArray(p) ? p : [p];
    rules = list.map((rule) => ({ rule, count: 0 }));
  };
  setPlan(plan);

  const pick = (method: string, path: string): Fault | undefined => {
    let chosen: Fault | undefined;
    for (const r of rules) {
      const m = r.rule.match ?? {};
      if (m.method !== undefined && m.method.toUpperCase() !== method.toUpperCase()) continue;
      if (m.path !== undefined) {
        m.path.lastIndex = 0;
        if (!m.path.test(path)) continue;
      }
      const n = r.count++;
      const skip = r.rule.skip ?? 0;
      const times = r.rule.times ?? 1;
      if (chosen === undefined && n >= skip && n < skip + times) chosen = r.rule.fault;
    }
    return chosen;
  };

  const rewriteLocation = (v: string): string => {
    if (v.startsWith(targetOrigin) && (v.length === targetOrigin.length || '/?#'.includes(v[targetOrigin.length]))) {
      return proxyOrigin + v.slice(targetOrigin.length);
    }
    return v;
  };

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const method = req.method ?? 'GET';
    const path = req.url ?? '/';
    const rec: ProxyRequestRecord = { method, path, status: 0, range: typeof req.headers.range === 'string' ? req.headers.range : undefined };
    requests.push(rec);
    const fault = pick(method, path);
    if (fault) rec.fault = fault.kind;

    if (fault?.kind === 'hang') {
      // Swallow the request: never forward it, never answer (the client gives up or is killed).
      req.resume();
      return;
    }

    if (fault?.kind === 'status') {
      const body = fault.body === undefined ? Buffer.alloc(0) : Buffer.from(fault.body);
      req.resume();
      req.once('end', () => {
        rec.status = fault.status;
        res.writeHead(fault.status, { 'content-length': String(body.length), ...fault.headers });
        res.end(body);
      });
      return;
    }

    const headers: Record<string, string | string[]> = {};
    const raw = req.rawHeaders;
    for (let i = 0; i + 1 < raw.length; i += 2) {
      const k = raw[i].toLowerCase();
      if (HOP_BY_HOP.has(k) || k === 'host' || k === 'expect') continue;
      const prev = headers[k];
      headers[k] = prev === undefined ? raw[i + 1] : Array.isArray(prev) ? [...prev, raw[i + 1]] : [prev, raw[i + 1]];
    }
    headers.host = targetHost;

    const upReq = httpRequest({ host: t.hostname, port: t.port, method, path, headers, agent });
    let cut = false;
    const cutClient = (graceful: boolean): void => {
      cut = true;
      upReq.destroy();
      const sock = res.socket ?? req.socket;
      if (graceful) sock.end();
      else sock.destroy();
    };

    upReq.on('error', (err) => {
      if (cut) return;
      if (!res.headersSent && !res.destroyed) {
        rec.status = 502;
        const msg = `fault-proxy: upstream error: ${err.message}\n`;
        res.writeHead(502, { 'content-type': 'text/plain', 'content-length': String(Buffer.byteLength(msg)) });
        res.end(msg);
      } else {
        res.destroy();
      }
    });
    res.on('close', () => {
      if (!res.writableFinished) upReq.destroy();
    });

    // Request body.
    if (fault?.kind === 'reset-request-after') {
      let received = 0;
      const onData = (chunk: Buffer): void => {
        if (cut) return;
        if (received + chunk.length >= fault.bytes) {
          const part = chunk.subarray(0, fault.bytes - received);
          received = fault.bytes;
          req.off('data', onData);
          req.pause();
          const finish = (): void => cutClient(false);
          if (part.length > 0) upReq.write(part, finish);
          else finish();
          return;
        }
        received += chunk.length;
        if (!upReq.write(chunk)) {
          req.pause();
          upReq.once('drain', () => req.resume());
        }
      };
      req.on('data', onData);
      req.on('end', () => {
        if (!cut) upReq.end();
      });
    } else {
      req.pipe(upReq);
    }

    upReq.on('response', (upRes) => {
      if (cut) {
        upRes.destroy();
        return;
      }
      const out: string[] = [];
      const rh = upRes.rawHeaders;
      for (let i = 0; i + 1 < rh.length; i += 2) {
        const k = rh[i].toLowerCase();
        if (HOP_BY_HOP.has(k) || k === 'transfer-encoding') continue;
        out.push(rh[i], k === 'location' ? rewriteLocation(rh[i + 1]) : rh[i + 1]);
      }
      const status = upRes.statusCode ?? 502;
      rec.status = status;
      res.writeHead(status, upRes.statusMessage, out);
      pump(upRes, res, fault, cutClient).catch(() => {
        upRes.destroy();
        if (!cut) res.destroy();
      });
    });
  };

  const server = createServer(handle);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.unref();
  const port = (server.address() as AddressInfo).port;
  const host = `127.0.0.1:${port}`;
  proxyOrigin = `http://${host}`;
  const unregister = registerExitCleanup(() => {
    server.closeAllConnections();
    agent.destroy();
  });

  let stopping: Promise<void> | undefined;
  return {
    host,
    url: proxyOrigin,
    requests,
    setPlan,
    stop() {
      stopping ??= new Promise<void>((resolve) => {
        unregister();
        server.close(() => resolve());
        server.closeAllConnections();
        agent.destroy();
      });
      return stopping;
    },
  };
}

async function pump(
  upRes: IncomingMessage,
  res: ServerResponse,
  fault: Fault | undefined,
  cutClient: (graceful: boolean) => void,
): Promise<void> {
  let sent = 0;
  const started = Date.now();
  if (fault?.kind === 'reset-after' || fault?.kind === 'truncate-after') res.flushHeaders();
  for await (const c of upRes) {
    let buf = c as Buffer;
    switch (fault?.kind) {
      case 'reset-after':
      case 'truncate-after': {
        if (sent + buf.length >= fault.bytes) {
          const part = buf.subarray(0, fault.bytes - sent);
          if (part.length > 0) await writeFlushed(res, part);
          upRes.destroy();
          cutClient(fault.kind === 'truncate-after');
          return;
        }
        break;
      }
      case 'corrupt': {
        if (fault.atByte >= sent && fault.atByte < sent + buf.length) {
          buf = Buffer.from(buf); // don't mutate a buffer we don't own
          buf[fault.atByte - sent] ^= 0xff;
        }
        break;
      }
      case 'trickle': {
        const slice = Math.max(1, Math.floor(fault.bytesPerSec / 50));
        for (let off = 0; off < buf.length; off += slice) {
          const piece = buf.subarray(off, off + slice);
          await writeChunk(res, piece);
          sent += piece.length;
          const due = started + (sent / fault.bytesPerSec) * 1000;
          const wait = due - Date.now();
          if (wait > 0) await sleep(wait);
        }
        continue;
      }
      default:
        break;
    }
    await writeChunk(res, buf);
    sent += buf.length;
  }
  res.end();
}
