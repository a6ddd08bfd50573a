/**
 * The fetch workers' send path (src/remote/send-core.ts) against raw in-process servers: the body is the file range,
 * hashed on the way; early answers (401 before the body), short files, dropped connections and aborts.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs, { writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { runSend, type SendJob, type SendOutcome } from '../../../src/remote/send-core.js';
import { FetchPool } from '../../../src/remote/fetch-pool.js';
import { tmpDir } from '../../support/tmp.js';

const dir = tmpDir('modctl-send-core-');
const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

function fileWith(name: string, data: Buffer): string {
  const f = path.join(dir, name);
  writeFileSync(f, data);
  return f;
}

/** A server that reads a request (head + Content-Length body) and answers via `answer(head, body, sock)`. */
async function server(answer: (head: string, body: Buffer, sock: net.Socket) => void, opts: { answerEarly?: boolean } = {}) {
  const seen: Array<{ head: string; body: Buffer }> = [];
  const srv = net.createServer((sock) => {
    let buf = Buffer.alloc(0);
    let head: string | undefined;
    let want = 0;
    sock.on('error', () => {});
    sock.on('data', (c) => {
      buf = Buffer.concat([buf, c]);
      if (head === undefined) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        head = buf.toString('latin1', 0, end);
        want = Number(/\r\ncontent-length: (\d+)/i.exec(head)?.[1] ?? 0);
        buf = buf.subarray(end + 4);
        if (opts.answerEarly) {
          seen.push({ head, body: Buffer.alloc(0) });
          answer(head, Buffer.alloc(0), sock);
          return;
        }
      }
      if (buf.length >= want) {
        seen.push({ head, body: buf });
        answer(head, buf, sock);
      }
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  after(() => new Promise<void>((r) => srv.close(() => r())));
  return { url: `http://127.0.0.1:${(srv.address() as net.AddressInfo).port}/v2/r/blobs/uploads/abc?_state=x`, seen };
}

function job(url: string, file: string, start: number, length: number, extra: Partial<SendJob> = {}): SendJob {
  return { method: 'PATCH', url, headers: { 'content-type': 'application/octet-stream', authorization: 'Basic Ym9iOnB3' }, file, start, length, alg: 'sha256', ...extra };
}

const response = (o: SendOutcome) => {
  assert.equal(o.kind, 'response', JSON.stringify(o));
  return o as Extract<SendOutcome, { kind: 'response' }>;
};

/** Whether the test directory's file system takes O_DIRECT (tmpfs does not): then the O_DIRECT cases must use it. */
function directPossible(): boolean {
  const f = fileWith('probe.bin', Buffer.alloc(4096));
  try {
    fs.closeSync(fs.openSync(f, fs.constants.O_RDONLY | fs.constants.O_DIRECT));
    return true;
  } catch {
    return false;
  }
}

const READS: Array<[string, Partial<SendJob>]> = [
  ['buffered reads', {}],
  ['O_DIRECT reads', { directIoMin: 0 }],
];

for (const [reads, extra] of READS)
test(`the body is the file range, hashed on the way; the answer comes back with its headers (${reads})`, async () => {
  const data = Buffer.alloc(3 * 1024 * 1024 + 333);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7) & 0xff;
  const f = fileWith('a.bin', data);
  const srv = await server((_h, _b, sock) => sock.end('HTTP/1.1 202 Accepted\r\nLocation: /v2/r/blobs/uploads/abc?_state=y\r\nRange: 0-1\r\nContent-Length: 0\r\n\r\n'));
  const progress: number[] = [];
  const o = response(await runSend(job(srv.url, f, 1000, data.length - 1000, extra), { onProgress: (n) => progress.push(n) }));
  assert.equal(o.status, 202);
  assert.equal(o.headers.location, '/v2/r/blobs/uploads/abc?_state=y');
  assert.equal(o.sent, data.length - 1000);
  assert.equal(o.digest, sha(data.subarray(1000)));
  assert.deepEqual(srv.seen[0].body, data.subarray(1000));
  assert.match(srv.seen[0].head, /^PATCH \/v2\/r\/blobs\/uploads\/abc\?_state=x HTTP\/1\.1\r\n/);
  assert.match(srv.seen[0].head, new RegExp(`\\r\\ncontent-length: ${data.length - 1000}\\r\\n`));
  assert.match(srv.seen[0].head, /\r\nauthorization: Basic Ym9iOnB3(\r\n|$)/);
  assert.equal(progress.at(-1), data.length - 1000);
  assert.equal(o.direct, extra.directIoMin !== undefined && directPossible());
});

test('O_DIRECT reads: block-aligned and unaligned ranges, ranges ending mid-block and at the end of the file', async () => {
  const data = Buffer.alloc(2 * 1024 * 1024 + 4096 * 3 + 17);
  for (let i = 0; i < data.length; i++) data[i] = (i * 31 + (i >> 12)) & 0xff;
  const f = fileWith('ranges.bin', data);
  const srv = await server((_h, _b, sock) => sock.end('HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n'));
  const ranges: Array<[number, number]> = [
    [0, data.length],
    [4096, 1024 * 1024],
    [4095, 1024 * 1024 + 2],
    [1024 * 1024 + 1, data.length - (1024 * 1024 + 1)],
    [data.length - 17, 17],
    [77, 1],
  ];
  for (const [i, [start, length]] of ranges.entries()) {
    const o = response(await runSend(job(srv.url, f, start, length, { directIoMin: 0 })));
    assert.equal(o.sent, length, `range ${start}+${length}`);
    assert.equal(o.digest, sha(data.subarray(start, start + length)), `range ${start}+${length}`);
    assert.deepEqual(srv.seen[i].body, data.subarray(start, start + length), `range ${start}+${length}`);
  }
});

test('an answer before the body is through (401) is returned at once, without a digest', async () => {
  const f = fileWith('b.bin', Buffer.alloc(8 * 1024 * 1024, 1));
  const srv = await server(
    (_h, _b, sock) => sock.end('HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm="r"\r\nContent-Length: 12\r\n\r\nunauthorized'),
    { answerEarly: true },
  );
  const o = response(await runSend(job(srv.url, f, 0, 8 * 1024 * 1024)));
  assert.equal(o.status, 401);
  assert.equal(Buffer.from(o.body).toString(), 'unauthorized');
  assert.equal(o.digest, undefined);
  assert.ok(o.sent < 8 * 1024 * 1024 || o.digest === undefined);
});

for (const [reads, extra] of READS)
test(`a file shorter than the length announced fails as E_FILE_CHANGED, on our side (${reads})`, async () => {
  const f = fileWith('c.bin', Buffer.alloc(1000, 2));
  const srv = await server((_h, _b, sock) => sock.end('HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n'));
  const o = await runSend(job(srv.url, f, 0, 5000, extra));
  assert.equal(o.kind, 'failed');
  assert.equal((o as { code?: string }).code, 'E_FILE_CHANGED');
  assert.equal((o as { local?: boolean }).local, true);
});

test('a connection closed without an answer is a retryable transport failure', async () => {
  const f = fileWith('d.bin', Buffer.alloc(100_000, 3));
  const srv = await server((_h, _b, sock) => sock.destroy());
  const o = await runSend(job(srv.url, f, 0, 100_000));
  assert.equal(o.kind, 'failed');
  assert.equal((o as { code?: string }).code, 'ECONNRESET');
  assert.notEqual((o as { local?: boolean }).local, true);
});

test('on the pool: an abort stops a send that the server never answers', async () => {
  const f = fileWith('e.bin', Buffer.alloc(64 * 1024 * 1024, 4));
  const conns: net.Socket[] = [];
  const srv = net.createServer((sock) => {
    conns.push(sock); // takes nothing and never answers
    sock.pause();
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  after(() => {
    for (const c of conns) c.destroy();
    return new Promise<void>((r) => srv.close(() => r()));
  });
  const pool = new FetchPool(1);
  after(() => pool.close());
  const ac = new AbortController();
  const url = `http://127.0.0.1:${(srv.address() as net.AddressInfo).port}/u`;
  const running = pool.send(job(url, f, 0, 64 * 1024 * 1024), { signal: ac.signal });
  setTimeout(() => ac.abort(), 200);
  const o = await running;
  assert.equal(o.kind, 'failed');
  assert.equal((o as { name?: string }).name, 'AbortError');
});
