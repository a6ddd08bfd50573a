/**
 * The fetch workers' receive path (src/remote/fetch-core.ts) against raw in-process servers that answer exactly what
 * each case needs: full bodies, ranged resumes (aligned and not, with and without O_DIRECT), 200 restarts, wrong
 * ranges, chunked and compressed framing, error bodies, interim answers, split heads, drops, overlong and short
 * bodies, TLS with and without the CA, symlinks under the partial name, aborts, and header injection.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { closeSync, constants, existsSync, openSync, readFileSync, readdirSync, symlinkSync, writeFileSync, statSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import path from 'node:path';
import { dechunk, parseHead, runFetch, type FetchJob, type FetchOutcome } from '../../../src/remote/fetch-core.js';
import { FetchPool } from '../../../src/remote/fetch-pool.js';
import { generateTlsCerts } from '../../support/tls.js';
import { tmpDir } from '../../support/tmp.js';

const dir = tmpDir('modctl-fetch-core-');
let fileNo = 0;
const newFile = () => path.join(dir, `f${fileNo++}`);

function data(n: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  let x = seed * 2654435761 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}
/** Whether `dir`'s file system takes O_DIRECT at all (tmpfs does not): the O_DIRECT cases expect it used iff so. */
const directSupported = (() => {
  try {
    const fd = openSync(path.join(dir, 'direct-check'), constants.O_WRONLY | constants.O_CREAT | (constants.O_DIRECT ?? 0));
    closeSync(fd);
    return constants.O_DIRECT !== undefined;
  } catch {
    return false;
  }
})();
const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

interface Seen {
  head: string;
  range?: string;
}

/**
 * A raw TCP (or TLS) server: `answer(seen, socket)` writes whatever bytes it likes. Returns the base URL and the
 * request heads seen.
 */
async function rawServer(answer: (seen: Seen, sock: net.Socket) => void, secure?: { key: Buffer; cert: Buffer }): Promise<{ url: string; seen: Seen[] }> {
  const seen: Seen[] = [];
  const onConn = (sock: net.Socket) => {
    let buf = '';
    sock.on('error', () => {});
    sock.on('data', (c) => {
      buf += c.toString('latin1');
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0 || buf === '\0') return;
      const head = buf.slice(0, end);
      buf = '\0';
      const s: Seen = { head, range: /\r\nrange: *([^\r]*)/i.exec(head)?.[1] };
      seen.push(s);
      answer(s, sock);
    });
  };
  const server = secure ? tls.createServer(secure, onConn) : net.createServer(onConn);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  after(() => new Promise<void>((r) => server.close(() => r())));
  const port = (server.address() as net.AddressInfo).port;
  return { url: `${secure ? 'https' : 'http'}://127.0.0.1:${port}/v2/r/blobs/x`, seen };
}

/** Serve `body` (honouring `Range: bytes=N-` with a 206) with a Content-Length, optionally in small pieces. */
function serveBody(body: Buffer, opts: { pieces?: number; ignoreRange?: boolean } = {}) {
  return (s: Seen, sock: net.Socket) => {
    const from = !opts.ignoreRange && s.range ? Number(/bytes=(\d+)-/.exec(s.range)![1]) : 0;
    const part = body.subarray(from);
    const head =
      from > 0
        ? `HTTP/1.1 206 Partial Content\r\nContent-Length: ${part.length}\r\nContent-Range: bytes ${from}-${body.length - 1}/${body.length}\r\n\r\n`
        : `HTTP/1.1 200 OK\r\nContent-Length: ${part.length}\r\n\r\n`;
    if (!opts.pieces) {
      sock.end(Buffer.concat([Buffer.from(head, 'latin1'), part]));
      return;
    }
    const all = Buffer.concat([Buffer.from(head, 'latin1'), part]);
    const step = Math.ceil(all.length / opts.pieces);
    let i = 0;
    const next = () => {
      if (i >= all.length) return void sock.end();
      sock.write(all.subarray(i, i + step), () => setImmediate(next));
      i += step;
    };
    next();
  };
}

function job(url: string, file: string, size: number, extra: Partial<FetchJob> = {}): FetchJob {
  return { url, headers: { 'user-agent': 'test' }, file, offset: 0, size, alg: 'sha256', ...extra };
}

function done(o: FetchOutcome): Extract<FetchOutcome, { kind: 'done' }> {
  assert.equal(o.kind, 'done', JSON.stringify(o));
  return o as Extract<FetchOutcome, { kind: 'done' }>;
}

test('a full body lands in the file with its digest; progress ends at the size; the request asks to close', async () => {
  const body = data(3 * 1024 * 1024 + 17, 1);
  const srv = await rawServer(serveBody(body));
  const file = newFile();
  const positions: number[] = [];
  const o = done(await runFetch(job(srv.url, file, body.length), { onProgress: (p) => positions.push(p) }));
  assert.equal(o.digest, sha(body));
  assert.equal(o.length, body.length);
  assert.deepEqual(readFileSync(file), body);
  assert.equal(positions.at(-1), body.length);
  assert.match(srv.seen[0].head, /^GET \/v2\/r\/blobs\/x HTTP\/1\.1\r\n/);
  assert.match(srv.seen[0].head, /\r\nconnection: close/i);
  assert.match(srv.seen[0].head, /\r\nhost: 127\.0\.0\.1:\d+/i);
});

for (const direct of [false, true]) {
  for (const have of [4096 * 3, 4096 * 3 + 123]) {
    test(`a resume from ${have % 4096 ? 'an unaligned' : 'an aligned'} offset continues the file and hashes the prefix${direct ? ' (O_DIRECT)' : ''}`, async () => {
      const body = data(5 * 1024 * 1024 + 999, 2);
      const srv = await rawServer(serveBody(body, { pieces: 37 }));
      const file = newFile();
      writeFileSync(file, body.subarray(0, have));
      const o = done(await runFetch(job(srv.url, file, body.length, { offset: have, headers: { range: `bytes=${have}-` }, directIoMin: direct ? 1 : undefined })));
      assert.equal(o.digest, sha(body));
      assert.deepEqual(readFileSync(file), body);
      assert.equal(srv.seen[0].range, `bytes=${have}-`);
      assert.equal(o.direct, direct && directSupported, 'O_DIRECT used exactly when asked for and supported');
      assert.deepEqual(readdirSync(dir).filter((n) => n.endsWith('.dio-probe')), [], 'no O_DIRECT probe file left');
    });
  }
}

test('O_DIRECT writes of a body whose size is not a multiple of the block size end with a buffered tail', async () => {
  const body = data(2 * 1024 * 1024 + 4095, 3);
  const srv = await rawServer(serveBody(body, { pieces: 5 }));
  const file = newFile();
  const o = done(await runFetch(job(srv.url, file, body.length, { directIoMin: 1, preallocate: true })));
  assert.equal(o.direct, directSupported);
  assert.equal(o.digest, sha(body));
  assert.deepEqual(readFileSync(file), body);
  assert.equal(statSync(file).size, body.length, 'preallocation keeps the file length honest');
});

test('preallocated blocks (buffered writes) never make a dropped transfer look longer than what arrived', async () => {
  const size = 72 * 1024 * 1024;
  const cut = 66 * 1024 * 1024 + 5;
  const chunk = data(1024 * 1024, 13);
  const srv = await rawServer((_s, sock) => {
    sock.write(`HTTP/1.1 200 OK\r\nContent-Length: ${size}\r\n\r\n`);
    let sent = 0;
    const next = () => {
      if (sent >= cut) return void setTimeout(() => sock.destroy(), 50);
      const n = Math.min(chunk.length, cut - sent);
      sent += n;
      sock.write(chunk.subarray(0, n), next);
    };
    next();
  });
  const file = newFile();
  const o = await runFetch(job(srv.url, file, size, { preallocate: true }));
  assert.equal(o.kind, 'failed');
  assert.equal(statSync(file).size, cut, 'the length is what arrived: a resume starts there');
  if (process.platform === 'linux' && existsSync('/usr/bin/fallocate')) {
    assert.ok(statSync(file).blocks * 512 >= size, 'the blocks for the whole blob were reserved');
  }
});

test('an empty body (Content-Length: 0) completes at once with the empty digest', async () => {
  const srv = await rawServer((_s, sock) => sock.write('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n')); // and keeps the connection open
  const file = newFile();
  const o = done(await runFetch(job(srv.url, file, 0)));
  assert.equal(o.digest, sha(Buffer.alloc(0)));
  assert.equal(statSync(file).size, 0);
});

test('a 200 answer to a ranged request restarts the file from 0', async () => {
  const body = data(300_000, 4);
  const srv = await rawServer(serveBody(body, { ignoreRange: true }));
  const file = newFile();
  writeFileSync(file, Buffer.alloc(1000, 0x55)); // garbage: a restart must not keep it
  const o = done(await runFetch(job(srv.url, file, body.length, { offset: 1000 })));
  assert.equal(o.digest, sha(body));
  assert.deepEqual(readFileSync(file), body);
});

test('a 206 for another range than asked is handed back and the file is left alone', async () => {
  const body = data(100_000, 5);
  const srv = await rawServer((_s, sock) => sock.end(`HTTP/1.1 206 Partial Content\r\nContent-Length: 10\r\nContent-Range: bytes 5-14/${body.length}\r\n\r\n0123456789`));
  const file = newFile();
  writeFileSync(file, body.subarray(0, 1000));
  const o = await runFetch(job(srv.url, file, body.length, { offset: 1000 }));
  assert.equal(o.kind, 'response');
  assert.equal((o as { status: number }).status, 206);
  assert.deepEqual(readFileSync(file), body.subarray(0, 1000));
});

test('chunked or compressed 200 bodies are "unsupported" and nothing is written', async () => {
  for (const header of ['Transfer-Encoding: chunked', 'Content-Encoding: gzip\r\nContent-Length: 3']) {
    const srv = await rawServer((_s, sock) => sock.end(`HTTP/1.1 200 OK\r\n${header}\r\n\r\n3\r\nabc\r\n0\r\n\r\n`));
    const file = newFile();
    const o = await runFetch(job(srv.url, file, 3));
    assert.equal(o.kind, 'unsupported', header);
    assert.equal(existsSync(file), false);
  }
});

test('an error status comes back with its headers and (capped, de-chunked) body; nothing is written', async () => {
  const err = '{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown"}]}';
  const srv = await rawServer((_s, sock) =>
    sock.end(`HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nX-Dup: a\r\nX-Dup: b\r\nContent-Length: ${err.length}\r\n\r\n${err}`),
  );
  const file = newFile();
  const o = await runFetch(job(srv.url, file, 10));
  assert.equal(o.kind, 'response');
  const r = o as Extract<FetchOutcome, { kind: 'response' }>;
  assert.equal(r.status, 404);
  assert.equal(Buffer.from(r.body).toString(), err);
  assert.deepEqual(r.headers['x-dup'], ['a', 'b']);
  assert.equal(existsSync(file), false);

  const chunked = await rawServer((_s, sock) => sock.end(`HTTP/1.1 500 Oops\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n`));
  const c = (await runFetch(job(chunked.url, newFile(), 10))) as Extract<FetchOutcome, { kind: 'response' }>;
  assert.equal(c.status, 500);
  assert.equal(Buffer.from(c.body).toString(), 'hello world');

  const big = await rawServer((_s, sock) => sock.end(`HTTP/1.1 503 Busy\r\nContent-Length: 100000\r\n\r\n${'x'.repeat(100000)}`));
  const b = (await runFetch(job(big.url, newFile(), 10))) as Extract<FetchOutcome, { kind: 'response' }>;
  assert.equal(b.status, 503);
  assert.equal(b.body.length, 8 * 1024, 'error bodies are capped');
});

test('a redirect is handed back with its Location', async () => {
  const srv = await rawServer((_s, sock) => sock.end('HTTP/1.1 307 Temporary Redirect\r\nLocation: https://cdn.example/x?sig=1\r\nContent-Length: 0\r\n\r\n'));
  const o = (await runFetch(job(srv.url, newFile(), 10))) as Extract<FetchOutcome, { kind: 'response' }>;
  assert.equal(o.status, 307);
  assert.equal(o.headers.location, 'https://cdn.example/x?sig=1');
});

test('an interim 100 answer and a head split into single bytes are read correctly', async () => {
  const body = data(70_000, 6);
  const srv = await rawServer((_s, sock) => {
    const all = Buffer.concat([Buffer.from(`HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n`, 'latin1'), body]);
    let i = 0;
    const next = () => {
      if (i >= all.length) return void sock.end();
      const n = i < 80 ? 1 : 4096;
      sock.write(all.subarray(i, i + n), () => setTimeout(next, i < 80 ? 1 : 0));
      i += n;
    };
    next();
  });
  const file = newFile();
  const o = done(await runFetch(job(srv.url, file, body.length)));
  assert.equal(o.digest, sha(body));
});

test('a connection dropped mid-body fails with a retryable code and keeps exactly the bytes that arrived', async () => {
  for (const direct of [undefined, 1]) {
    const body = data(1024 * 1024, 7);
    const cut = 300_001;
    const srv = await rawServer((_s, sock) => {
      sock.write(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n`);
      sock.write(body.subarray(0, cut), () => setTimeout(() => sock.destroy(), 30));
    });
    const file = newFile();
    const o = await runFetch(job(srv.url, file, body.length, { directIoMin: direct }));
    assert.equal(o.kind, 'failed');
    assert.ok(['UND_ERR_RES_CONTENT_LENGTH_MISMATCH', 'ECONNRESET'].includes((o as { code?: string }).code ?? ''), JSON.stringify(o));
    assert.deepEqual(readFileSync(file), body.subarray(0, cut), 'a valid prefix to resume from');
  }
});

test('a Content-Length that contradicts the manifest size fails before anything is written', async () => {
  const srv = await rawServer((_s, sock) => sock.end(`HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n${'a'.repeat(2000)}`));
  const file = newFile();
  const o = await runFetch(job(srv.url, file, 1000));
  assert.equal(o.kind, 'failed');
  assert.equal((o as { code?: string }).code, 'E_SIZE_MISMATCH');
  assert.equal((o as { actual?: number }).actual, 2000);
  assert.equal(existsSync(file), false);
});

test('a body without Content-Length is read to the close and refused once it passes the size', async () => {
  const body = data(50_000, 8);
  const ok = await rawServer((_s, sock) => sock.end(Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\n\r\n'), body])));
  const f1 = newFile();
  assert.equal(done(await runFetch(job(ok.url, f1, body.length))).digest, sha(body));
  const over = await rawServer((_s, sock) => sock.end(Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\n\r\n'), body, body])));
  const o = await runFetch(job(over.url, newFile(), body.length));
  assert.equal(o.kind, 'failed');
  assert.equal((o as { code?: string }).code, 'E_SIZE_MISMATCH');
});

test('bytes past the declared Content-Length are not written', async () => {
  const body = data(10_000, 9);
  const srv = await rawServer((_s, sock) => sock.end(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n`), body, Buffer.from('GARBAGE')])));
  const file = newFile();
  done(await runFetch(job(srv.url, file, body.length)));
  assert.deepEqual(readFileSync(file), body);
});

test('TLS: refused without the CA (certificate error), verified with it, and taken with verification off', async () => {
  const certs = await generateTlsCerts();
  after(() => certs.cleanup());
  const body = data(200_000, 10);
  const srv = await rawServer(serveBody(body, { pieces: 3 }), { key: readFileSync(certs.keyFile), cert: readFileSync(certs.certFile) });
  const bad = await runFetch(job(srv.url, newFile(), body.length));
  assert.equal(bad.kind, 'failed');
  assert.match(`${(bad as { code?: string }).code} ${(bad as { message: string }).message}`, /CERT|certificate|self[- ]signed|verify/i);
  const f = newFile();
  const good = done(await runFetch(job(srv.url, f, body.length, { tls: { ca: readFileSync(certs.caFile, 'utf8'), rejectUnauthorized: true } })));
  assert.equal(good.digest, sha(body));
  const insecure = done(await runFetch(job(srv.url, newFile(), body.length, { tls: { rejectUnauthorized: false } })));
  assert.equal(insecure.digest, sha(body));
});

test('an IPv6 literal host is connected to and sent as the Host header', async () => {
  const body = data(5000, 14);
  const server = net.createServer((sock) => {
    let head = '';
    sock.on('data', (c) => {
      head += c.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      assert.match(head, /\r\nhost: \[::1\]:\d+\r\n/);
      sock.end(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n`), body]));
    });
  });
  const listening = await new Promise<boolean>((r) => {
    server.once('error', () => r(false));
    server.listen(0, '::1', () => r(true));
  });
  if (!listening) {
    // no IPv6 loopback on this machine: the URL must still fail cleanly, not hang
    const o = await runFetch(job('http://[::1]:9/x', newFile(), 1, { idleTimeoutMs: 2000 }));
    assert.equal(o.kind, 'failed');
    return;
  }
  after(() => new Promise<void>((r) => server.close(() => r())));
  const port = (server.address() as net.AddressInfo).port;
  const o = done(await runFetch(job(`http://[::1]:${port}/v2/r/blobs/x`, newFile(), body.length)));
  assert.equal(o.digest, sha(body));
});

test('a symbolic link under the partial name is never followed', async () => {
  const body = data(1000, 11);
  const srv = await rawServer(serveBody(body));
  const victim = path.join(dir, 'victim');
  writeFileSync(victim, 'keep me');
  const file = newFile();
  symlinkSync(victim, file);
  const o = await runFetch(job(srv.url, file, body.length));
  assert.equal(o.kind, 'failed');
  assert.equal((o as { local?: boolean }).local, true);
  assert.equal(readFileSync(victim, 'utf8'), 'keep me');
});

test('header values with CR or LF are refused before anything is sent', async () => {
  const srv = await rawServer(serveBody(Buffer.alloc(1)));
  const o = await runFetch(job(srv.url, newFile(), 1, { headers: { authorization: 'Bearer x\r\nX-Evil: 1' } }));
  assert.equal(o.kind, 'failed');
  assert.equal(srv.seen.length, 0);
});

test('the pool: jobs on worker threads, aborts keep the partial bytes, and close() ends the workers', async () => {
  const body = data(2 * 1024 * 1024, 12);
  const pool = new FetchPool(2);
  after(() => pool.close());
  const srv = await rawServer(serveBody(body, { pieces: 4 }));
  const files = [newFile(), newFile(), newFile()];
  const outs = await Promise.all(files.map((f) => pool.run(job(srv.url, f, body.length))));
  for (const [i, o] of outs.entries()) {
    assert.equal(done(o).digest, sha(body));
    assert.deepEqual(readFileSync(files[i]), body);
  }
  // a slow body, aborted after some bytes arrived
  const slow = await rawServer((_s, sock) => {
    sock.write(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n`);
    sock.write(body.subarray(0, 100_000));
  });
  const ac = new AbortController();
  const f = newFile();
  let pos = 0;
  const running = pool.run(job(slow.url, f, body.length), { signal: ac.signal, onProgress: (p) => (pos = p) });
  const deadline = Date.now() + 5000;
  while (pos < 100_000 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  ac.abort();
  const o = await running;
  assert.equal(o.kind, 'failed');
  assert.equal((o as { name?: string }).name, 'AbortError');
  assert.deepEqual(readFileSync(f), body.subarray(0, 100_000));
  await pool.close();
  const late = await pool.run(job(srv.url, newFile(), body.length));
  assert.equal(late.kind, 'failed', 'a closed pool takes no work');
});

test('parseHead and dechunk', () => {
  assert.deepEqual(parseHead('HTTP/1.1 200 OK\r\nA: 1\r\na: 2\r\nB:x'), { status: 200, headers: { a: ['1', '2'], b: 'x' } });
  assert.equal(parseHead('HTTP/2 200\r\n'), undefined);
  assert.equal(parseHead('HTTP/1.1 200 OK\r\nno colon'), undefined);
  assert.equal(dechunk(Buffer.from('3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\n')).toString(), 'abcde');
});
