import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import tarStream from 'tar-stream';
import { extractLayer, extractLayers, layerEncoding, type ExtractOptions } from '../../../src/extract/extract.js';
import type { Descriptor } from '../../../src/oci/types.js';

// ---------------------------------------------------------------------------------------------------------------
// Helpers: a parent temp dir holding the output dir, blobs served from memory, hand-built tars.

const ZSTD_FIXTURE = new URL('../../../../fixtures/tars/zstd-layer.tar.zst', import.meta.url);
const MT_RAW = 'application/vnd.cncf.model.weight.v1.raw';
const MT = {
  tar: 'application/vnd.cncf.model.code.v1.tar',
  'tar+gzip': 'application/vnd.cncf.model.code.v1.tar+gzip',
  'tar+zstd': 'application/vnd.cncf.model.code.v1.tar+zstd',
} as const;

const sha256 = (b: Buffer | string) => 'sha256:' + createHash('sha256').update(b).digest('hex');

interface Ws {
  parent: string;
  out: string;
  blobs: Map<string, Buffer>;
  opened: string[];
  warnings: string[];
  opts(extra?: Partial<ExtractOptions>): ExtractOptions;
  /** Every path under `parent` except the output dir's subtree, with its type: must not change in hostile tests. */
  outside(): string[];
  /** Every path under the output dir. */
  inside(): string[];
}

async function withWs(fn: (ws: Ws) => Promise<void>): Promise<void> {
  const parent = await fsp.mkdtemp(path.join(os.tmpdir(), 'modctl-extract-'));
  const out = path.join(parent, 'out');
  const blobs = new Map<string, Buffer>();
  const opened: string[] = [];
  const warnings: string[] = [];
  const ws: Ws = {
    parent,
    out,
    blobs,
    opened,
    warnings,
    opts: (extra = {}) => ({
      outputDir: out,
      onWarning: (m) => warnings.push(m),
      openBlob: async (d: Descriptor) => {
        opened.push(d.digest);
        const b = blobs.get(d.digest) ?? blobs.get(`${d.digest}#${d.size}`);
        if (!b) throw new Error(`no blob ${d.digest}`);
        return chunked(b);
      },
      ...extra,
    }),
    outside: () => listTree(parent, out),
    inside: () => (existsSync(out) ? listTree(out) : []),
  };
  try {
    await fn(ws);
  } finally {
    await fsp.rm(parent, { recursive: true, force: true });
  }
}

function listTree(root: string, exclude?: string): string[] {
  const res: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const p = path.join(dir, name);
      if (p === exclude) continue;
      const st = lstatSync(p);
      const kind = st.isSymbolicLink() ? 'link' : st.isDirectory() ? 'dir' : st.isFile() ? 'file' : 'other';
      res.push(`${path.relative(root, p)}:${kind}`);
      if (kind === 'dir') walk(p);
    }
  };
  walk(root);
  return res.sort();
}

function chunked(buf: Buffer, size = 64 * 1024): Readable {
  return Readable.from(
    (function* () {
      for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size);
    })(),
  );
}

/** Like chunked(), but yields to the event loop between chunks, as a network source would. */
function trickle(buf: Buffer, size: number): Readable {
  return Readable.from(
    (async function* () {
      for (let i = 0; i < buf.length; i += size) {
        await new Promise((r) => setImmediate(r));
        yield buf.subarray(i, i + size);
      }
    })(),
  );
}

function rawLayer(
  ws: Ws,
  body: Buffer | string,
  filepath: string | undefined,
  meta: { mode?: number; mtime?: string } = {},
  annotations?: Record<string, string>,
): Descriptor {
  const b = Buffer.from(body);
  const d: Descriptor = {
    mediaType: MT_RAW,
    digest: sha256(b),
    size: b.length,
    annotations: annotations ?? {
      ...(filepath !== undefined ? { 'org.cncf.model.filepath': filepath, 'org.opencontainers.image.title': filepath } : {}),
      'org.cncf.model.file.metadata+json': JSON.stringify({
        name: path.basename(filepath ?? 'x'),
        mode: meta.mode ?? 0o644,
        uid: 0,
        gid: 0,
        size: b.length,
        mtime: meta.mtime ?? '2024-05-06T07:08:09Z',
        typeflag: 0,
      }),
    },
  };
  ws.blobs.set(d.digest, b);
  return d;
}

type EntryType = 'file' | 'directory' | 'symlink' | 'link' | 'character-device' | 'block-device' | 'fifo';
interface TarEntry {
  name: string;
  type?: EntryType;
  body?: string | Buffer;
  linkname?: string;
  mode?: number;
  mtime?: Date;
}

const T0 = new Date('2023-03-04T05:06:07Z');

async function makeTar(entries: TarEntry[]): Promise<Buffer> {
  const pack = tarStream.pack();
  const chunks: Buffer[] = [];
  pack.on('data', (c) => chunks.push(c as Buffer));
  const done = new Promise<void>((r) => pack.on('end', () => r()));
  for (const e of entries) {
    const body = Buffer.from(e.body ?? '');
    const type = e.type ?? 'file';
    const header = {
        name: e.name,
        type,
        mode: e.mode ?? (type === 'directory' ? 0o755 : 0o644),
        mtime: e.mtime ?? T0,
        uid: 0,
        gid: 0,
        uname: '',
        gname: '',
        size: type === 'file' ? body.length : 0,
        linkname: e.linkname,
        devmajor: 1,
        devminor: 3,
    };
    if (type === 'file') pack.entry(header, body);
    else pack.entry(header);
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

function tarLayer(ws: Ws, blob: Buffer, enc: 'tar' | 'tar+gzip' | 'tar+zstd' = 'tar', digest?: string): Descriptor {
  const d: Descriptor = { mediaType: MT[enc], digest: digest ?? sha256(blob), size: blob.length };
  ws.blobs.set(d.digest, blob);
  return d;
}

/** A ustar header built by hand (for what tar-stream will not write: here a pax `x` header). */
function rawHeader(name: string, size: number, typeflag: string): Buffer {
  const b = Buffer.alloc(512);
  b.write(name, 0, 100, 'utf8');
  b.write('0000644\0', 100, 'ascii');
  b.write('0000000\0', 108, 'ascii');
  b.write('0000000\0', 116, 'ascii');
  b.write(size.toString(8).padStart(11, '0') + '\0', 124, 'ascii');
  b.write('00000000000\0', 136, 'ascii');
  b.write('        ', 148, 'ascii');
  b.write(typeflag, 156, 'ascii');
  b.write('ustar\0', 257, 'ascii');
  b.write('00', 263, 'ascii');
  let sum = 0;
  for (const x of b) sum += x;
  b.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'ascii');
  return b;
}

function pad512(b: Buffer): Buffer {
  const rem = b.length % 512;
  return rem ? Buffer.concat([b, Buffer.alloc(512 - rem)]) : b;
}

function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len++;
  return `${len}${body}`;
}

/**
 * A valid zstd frame holding `data` in raw (stored) blocks: lets tests build tar+zstd layers without a compressor.
 * RFC 8878: magic, frame header descriptor 0 (window descriptor present, no checksum, no content size), window
 * 128 KiB (exponent 7), then blocks with a 3-byte header `last | type << 1 | size << 3`.
 */
function zstdStored(data: Buffer): Buffer {
  const parts: Buffer[] = [Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, 7 << 3])];
  const max = 128 * 1024;
  let off = 0;
  do {
    const n = Math.min(max, data.length - off);
    const last = off + n >= data.length ? 1 : 0;
    const h = last | (0 << 1) | (n << 3);
    parts.push(Buffer.from([h & 0xff, (h >> 8) & 0xff, (h >> 16) & 0xff]), Buffer.from(data.subarray(off, off + n)));
    off += n;
  } while (off < data.length);
  return Buffer.concat(parts);
}

function assertCode(code: string): (e: unknown) => boolean {
  return (e: unknown) => {
    assert.equal((e as { code?: string }).code, code, `expected ${code}, got ${String(e)}`);
    return true;
  };
}

const mode = (p: string) => statSync(p).mode & 0o777;
const noTemps = (ws: Ws) => assert.deepEqual(ws.inside().filter((p) => p.includes('.modctl-tmp-')), []);

// ---------------------------------------------------------------------------------------------------------------

describe('layerEncoding', () => {
  const cases: [string, Record<string, string> | undefined, string][] = [
    ['application/vnd.cncf.model.weight.v1.raw', undefined, 'raw'],
    ['application/vnd.cnai.model.doc.v1.tar', undefined, 'tar'],
    ['application/vnd.cncf.model.weight.config.v1.tar+gzip', undefined, 'tar+gzip'],
    ['application/vnd.cncf.model.dataset.v1.tar+zstd', undefined, 'tar+zstd'],
    ['application/vnd.cncf.model.weight.v1.gguf', undefined, 'raw'],
    ['application/vnd.oci.image.layer.v1.tar', undefined, 'tar'],
    ['application/vnd.oci.image.layer.v1.tar+gzip', undefined, 'tar+gzip'],
    ['application/vnd.oci.image.layer.v1.tar+zstd', undefined, 'tar+zstd'],
    ['application/vnd.example.dir+gzip', { 'io.deis.oras.content.unpack': 'true', 'org.opencontainers.image.title': 'd' }, 'tar+gzip'],
    ['application/vnd.example.dir+gzip', { 'org.opencontainers.image.title': 'd.tgz' }, 'raw'],
    ['application/octet-stream', { 'org.opencontainers.image.title': 'model.onnx' }, 'raw'],
  ];
  for (const [mediaType, annotations, enc] of cases) {
    it(`${mediaType}${annotations ? ' ' + JSON.stringify(annotations) : ''} → ${enc}`, () => {
      assert.equal(layerEncoding({ mediaType, digest: sha256(''), size: 0, annotations }), enc);
    });
  }
  it('refuses an unknown media type without a title', () => {
    assert.throws(() => layerEncoding({ mediaType: 'application/x-unknown', digest: sha256(''), size: 0 }), assertCode('E_UNSUPPORTED_LAYER'));
  });
});

describe('raw layers round trip', () => {
  it('writes nested, unicode, empty and executable files with modes and mtimes', () =>
    withWs(async (ws) => {
      const layers = [
        rawLayer(ws, 'nested weights', 'a/b/c/model.safetensors'),
        rawLayer(ws, 'unicode', '模型/权重-ü.bin'),
        rawLayer(ws, '', 'empty.txt'),
        rawLayer(ws, '#!/bin/sh\necho hi\n', 'bin/run.sh', { mode: 0o755, mtime: '2020-01-02T03:04:05Z' }),
        rawLayer(ws, 'legacy', undefined, {}, { 'org.cnai.model.filepath': 'legacy/key.json' }),
        rawLayer(ws, 'titled', undefined, {}, { 'org.opencontainers.image.title': 'title-only.txt' }),
      ];
      let progress = 0;
      const res = await extractLayers(layers, ws.opts({ onProgress: (ev) => (progress += ev.bytes), concurrency: 2 }));
      assert.equal(res.layers, 6);
      assert.equal(res.bytes, layers.reduce((s, l) => s + l.size, 0));
      assert.equal(progress, res.bytes);
      assert.deepEqual(
        res.files.map((f) => [f.path, f.size, f.action]),
        [
          ['a/b/c/model.safetensors', 14, 'written'],
          ['模型/权重-ü.bin', 7, 'written'],
          ['empty.txt', 0, 'written'],
          ['bin/run.sh', 18, 'written'],
          ['legacy/key.json', 6, 'written'],
          ['title-only.txt', 6, 'written'],
        ],
      );
      assert.equal(readFileSync(path.join(ws.out, 'a/b/c/model.safetensors'), 'utf8'), 'nested weights');
      assert.equal(readFileSync(path.join(ws.out, '模型/权重-ü.bin'), 'utf8'), 'unicode');
      assert.equal(statSync(path.join(ws.out, 'empty.txt')).size, 0);
      assert.equal(mode(path.join(ws.out, 'bin/run.sh')), 0o755);
      assert.equal(mode(path.join(ws.out, 'empty.txt')), 0o644);
      assert.equal(statSync(path.join(ws.out, 'bin/run.sh')).mtime.toISOString(), '2020-01-02T03:04:05.000Z');
      assert.equal(statSync(path.join(ws.out, 'empty.txt')).mtime.toISOString(), '2024-05-06T07:08:09.000Z');
      assert.equal(readFileSync(path.join(ws.out, 'legacy/key.json'), 'utf8'), 'legacy');
      noTemps(ws);
    }));

  it('opens the largest layers first, and still reports files in manifest order', () =>
    withWs(async (ws) => {
      const layers = [
        rawLayer(ws, '{"a":1}', 'config.json'),
        rawLayer(ws, 'w'.repeat(5000), 'model-1.bin'),
        rawLayer(ws, 'readme', 'README.md'),
        rawLayer(ws, 'v'.repeat(9000), 'model-2.bin'),
      ];
      const res = await extractLayers(layers, ws.opts({ concurrency: 1 }));
      assert.deepEqual(ws.opened, [layers[3], layers[1], layers[0], layers[2]].map((l) => l.digest));
      assert.deepEqual(
        res.files.map((f) => f.path),
        ['config.json', 'model-1.bin', 'README.md', 'model-2.bin'],
      );
    }));

  it('creates the output directory when missing and honours filter', () =>
    withWs(async (ws) => {
      const a = rawLayer(ws, 'a', 'keep/a.txt');
      const b = rawLayer(ws, 'b', 'drop/b.txt');
      const res = await extractLayers([a, b], ws.opts({ filter: (_l, p) => p?.startsWith('keep/') ?? false }));
      assert.equal(res.layers, 1);
      assert.deepEqual(ws.inside(), ['keep/a.txt:file', 'keep:dir']);
      assert.deepEqual(ws.opened, [a.digest]);
      assert.deepEqual(await extractLayer(b, ws.opts({ filter: () => false })), []);
    }));

  it('runs at most `concurrency` layers at once', () =>
    withWs(async (ws) => {
      const layers = Array.from({ length: 12 }, (_, i) => rawLayer(ws, `file ${i}`, `f/${i}.bin`));
      let inFlight = 0;
      let max = 0;
      const base = ws.opts();
      await extractLayers(
        layers,
        ws.opts({
          concurrency: 3,
          openBlob: async (d) => {
            inFlight++;
            max = Math.max(max, inFlight);
            await new Promise((r) => setTimeout(r, 5));
            const s = await base.openBlob(d);
            s.on('close', () => inFlight--);
            return s;
          },
        }),
      );
      assert.ok(max <= 3 && max >= 2, `max in flight ${max}`);
      assert.equal(ws.inside().length, 13);
    }));

  it('fails with E_NO_FILEPATH when a raw layer names no file', () =>
    withWs(async (ws) => {
      const l = rawLayer(ws, 'x', undefined, {}, {});
      await assert.rejects(extractLayers([l], ws.opts()), assertCode('E_NO_FILEPATH'));
    }));

  it('refuses a layer larger than the free space before downloading it (E_NO_SPACE)', () =>
    withWs(async (ws) => {
      const l: Descriptor = { mediaType: MT_RAW, digest: sha256('huge'), size: 2 ** 52, annotations: { 'org.cncf.model.filepath': 'huge.bin' } };
      await assert.rejects(extractLayers([l], ws.opts()), (e: unknown) => {
        assertCode('E_NO_SPACE')(e);
        assert.match((e as Error).message, /needs 4\.0 PiB .*available/);
        return true;
      });
      assert.deepEqual(ws.opened, []);
      assert.deepEqual(ws.inside(), []);
    }));
});

describe('tar layers round trip', () => {
  async function sampleTar(): Promise<Buffer> {
    return makeTar([
      { name: 'code/', type: 'directory', mode: 0o750, mtime: new Date('2021-01-01T00:00:00Z') },
      { name: 'code/main.py', body: 'print("hi")\n', mode: 0o644 },
      { name: 'code/run.sh', body: '#!/bin/sh\n', mode: 0o755 },
      { name: 'code/empty', body: '' },
      { name: 'code/lib/', type: 'directory' },
      { name: 'code/lib/ü.txt', body: 'unicode' },
      { name: 'code/implicit/parent/deep.txt', body: 'deep' },
      { name: 'code/latest', type: 'symlink', linkname: 'run.sh' },
      { name: 'code/up', type: 'symlink', linkname: '../code/main.py' },
      { name: 'code/hard', type: 'link', linkname: 'code/main.py' },
      { name: './', type: 'directory' },
    ]);
  }

  async function check(ws: Ws, enc: 'tar' | 'tar+gzip'): Promise<void> {
    const tar = await sampleTar();
    const blob = enc === 'tar' ? tar : gzipSync(tar);
    const layer = tarLayer(ws, blob, enc);
    let progress = 0;
    const res = await extractLayers([layer], ws.opts({ onProgress: (ev) => (progress += ev.bytes) }));
    assert.equal(progress, blob.length);
    assert.equal(res.bytes, blob.length);
    const o = (p: string) => path.join(ws.out, p);
    assert.equal(readFileSync(o('code/main.py'), 'utf8'), 'print("hi")\n');
    assert.equal(mode(o('code/run.sh')), 0o755);
    assert.equal(mode(o('code/main.py')), 0o644);
    assert.equal(statSync(o('code/main.py')).mtime.getTime(), T0.getTime());
    assert.equal(readFileSync(o('code/lib/ü.txt'), 'utf8'), 'unicode');
    assert.equal(readFileSync(o('code/implicit/parent/deep.txt'), 'utf8'), 'deep');
    assert.equal(statSync(o('code/empty')).size, 0);
    // Directories: mode from the header, mtime restored after their contents were written.
    assert.equal(mode(o('code')), 0o750);
    assert.equal(statSync(o('code')).mtime.toISOString(), '2021-01-01T00:00:00.000Z');
    assert.equal(statSync(o('code/lib')).mtime.getTime(), T0.getTime());
    await assert.doesNotReject(fsp.readlink(o('code/latest')));
    assert.equal(await fsp.readlink(o('code/latest')), 'run.sh');
    assert.equal(readFileSync(o('code/up'), 'utf8'), 'print("hi")\n');
    assert.equal(statSync(o('code/hard')).ino, statSync(o('code/main.py')).ino);
    assert.deepEqual(
      res.files.map((f) => [f.path, f.action]),
      [
        ['code/main.py', 'written'],
        ['code/run.sh', 'written'],
        ['code/empty', 'written'],
        ['code/lib/ü.txt', 'written'],
        ['code/implicit/parent/deep.txt', 'written'],
        ['code/latest', 'written'],
        ['code/up', 'written'],
        ['code/hard', 'written'],
      ],
    );
    assert.equal(res.files[0].digest, sha256('print("hi")\n'));
    noTemps(ws);

    // Extracting again keeps everything.
    const again = await extractLayers([layer], ws.opts());
    assert.deepEqual(new Set(again.files.map((f) => f.action)), new Set(['kept']));
  }

  it('extracts a tar layer', () => withWs((ws) => check(ws, 'tar')));
  it('extracts a tar+gzip layer', () => withWs((ws) => check(ws, 'tar+gzip')));

  it('extracts a tar+zstd layer (fixture made with the zstd CLI)', () =>
    withWs(async (ws) => {
      const blob = readFileSync(ZSTD_FIXTURE);
      const layer = tarLayer(ws, blob, 'tar+zstd');
      const res = await extractLayers([layer], ws.opts());
      const o = (p: string) => path.join(ws.out, p);
      const expect: [string, string, number][] = [
        ['zst/hello.txt', 'ab95c5fceb4110f4f783280376e262e3b8dac4551b8b524afdbf6fc4f1411f83', 0o644],
        ['zst/run.sh', '299001868fb8c02fd431c336c6d058f5558c5dff5b5af5e6fe04b870a6a9cbba', 0o755],
        ['zst/big/zeros.bin', 'bb9f8df61474d25e71fa00722318cd387396ca1736605e1248821cc0de3d3af8', 0o644],
        ['zst/big/pattern.bin', 'f286954dcf9ce51006fd314455e08382c155763a1250808aa34a7e5b85aa7076', 0o644],
        ['zst/big/random.bin', 'b2fddfdddf88807d8ae54e38cded7704d92ec0f240ea0008b92a7bfae1939e00', 0o600],
      ];
      for (const [p, hex, m] of expect) {
        assert.equal(sha256(readFileSync(o(p))), `sha256:${hex}`, p);
        assert.equal(mode(o(p)), m, p);
        assert.equal(statSync(o(p)).mtime.toISOString(), '2025-01-02T03:04:05.000Z', p);
      }
      assert.deepEqual(
        res.files.map((f) => f.digest),
        expect.map((e) => `sha256:${e[1]}`),
      );
      assert.equal(statSync(o('zst/big/zeros.bin')).size, 4 * 1024 * 1024);
    }));

  it('extracts an OCI image tar layer and an ORAS directory layer', () =>
    withWs(async (ws) => {
      const tar = await makeTar([{ name: 'oci.txt', body: 'oci' }]);
      const oci: Descriptor = { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(tar), size: tar.length };
      ws.blobs.set(oci.digest, tar);
      const tgz = gzipSync(await makeTar([{ name: 'dir/', type: 'directory' }, { name: 'dir/oras.txt', body: 'oras' }]));
      const oras: Descriptor = {
        mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
        digest: sha256(tgz),
        size: tgz.length,
        annotations: { 'io.deis.oras.content.unpack': 'true', 'org.opencontainers.image.title': 'dir' },
      };
      ws.blobs.set(oras.digest, tgz);
      await extractLayers([oci, oras], ws.opts());
      assert.equal(readFileSync(path.join(ws.out, 'oci.txt'), 'utf8'), 'oci');
      assert.equal(readFileSync(path.join(ws.out, 'dir/oras.txt'), 'utf8'), 'oras');
    }));

  it('skips devices and fifos with a warning', () =>
    withWs(async (ws) => {
      const tar = await makeTar([
        { name: 'dev/null', type: 'character-device' },
        { name: 'dev/sda', type: 'block-device' },
        { name: 'pipe', type: 'fifo' },
        { name: 'ok.txt', body: 'ok' },
      ]);
      const res = await extractLayers([tarLayer(ws, tar)], ws.opts());
      assert.equal(ws.warnings.length, 3);
      assert.match(ws.warnings.join('\n'), /character-device entry "dev\/null"/);
      assert.match(ws.warnings.join('\n'), /block-device entry "dev\/sda"/);
      assert.match(ws.warnings.join('\n'), /fifo entry "pipe"/);
      assert.deepEqual(
        res.files.map((f) => [f.path, f.action]),
        [
          ['dev/null', 'skipped'],
          ['dev/sda', 'skipped'],
          ['pipe', 'skipped'],
          ['ok.txt', 'written'],
        ],
      );
      assert.equal(existsSync(path.join(ws.out, 'pipe')), false);
      assert.equal(existsSync(path.join(ws.out, 'dev/null')), false);
      assert.equal(readFileSync(path.join(ws.out, 'ok.txt'), 'utf8'), 'ok');
    }));

  it('ignores pax global headers', () =>
    withWs(async (ws) => {
      const rec = Buffer.from(paxRecord('comment', 'global'));
      const tar = Buffer.concat([rawHeader('pax_global_header', rec.length, 'g'), pad512(rec), await makeTar([{ name: 'a.txt', body: 'a' }])]);
      const res = await extractLayers([tarLayer(ws, tar)], ws.opts());
      assert.deepEqual(res.files.map((f) => f.path), ['a.txt']);
      assert.deepEqual(ws.inside(), ['a.txt:file']);
    }));
});

describe('streaming (memory does not grow with blob size)', () => {
  /** Bytes read from the blob may run ahead of bytes on disk by a bounded amount only. */
  async function maxLead(ws: Ws, layer: Descriptor, file: string, make: () => Readable): Promise<number> {
    let read = 0;
    let lead = 0;
    const dir = path.dirname(path.join(ws.out, file));
    const onDisk = () => {
      if (!existsSync(dir)) return 0;
      const tmp = readdirSync(dir).find((n) => n.startsWith(`.${path.basename(file)}.modctl-tmp-`));
      return tmp ? statSync(path.join(dir, tmp)).size : 0;
    };
    let next = 0;
    await extractLayers(
      [layer],
      ws.opts({
        openBlob: async () => make(),
        onProgress: (ev) => {
          read += ev.bytes;
          if (read >= next) {
            next = read + (1 << 20);
            lead = Math.max(lead, read - onDisk());
          }
        },
      }),
    );
    assert.equal(statSync(path.join(ws.out, file)).size >= 32 << 20, true);
    return lead;
  }

  const SIZE = 48 << 20;
  const CHUNK = Buffer.alloc(64 << 10, 'w');
  function generated(size: number): Readable {
    let sent = 0;
    return new Readable({
      read() {
        if (sent >= size) return void this.push(null);
        const n = Math.min(CHUNK.length, size - sent);
        sent += n;
        this.push(CHUNK.subarray(0, n));
      },
    });
  }
  function digestOf(r: () => Readable): Promise<string> {
    return new Promise((resolve, reject) => {
      const h = createHash('sha256');
      r().on('data', (c: Buffer) => h.update(c)).on('end', () => resolve('sha256:' + h.digest('hex'))).on('error', reject);
    });
  }

  it('raw layer', () =>
    withWs(async (ws) => {
      const make = () => generated(SIZE);
      const layer: Descriptor = { mediaType: MT_RAW, digest: await digestOf(make), size: SIZE, annotations: { 'org.cncf.model.filepath': 'big.bin' } };
      const lead = await maxLead(ws, layer, 'big.bin', make);
      assert.ok(lead < 8 << 20, `read ran ${lead} bytes ahead of the disk`);
    }));

  it('tar layer', () =>
    withWs(async (ws) => {
      // Header built by hand so the 48 MiB body can be generated lazily.
      const h = rawHeader('big.bin', SIZE, '0');
      const make = () => Readable.from((async function* () {
        yield h;
        for await (const c of generated(SIZE)) yield c as Buffer;
        yield Buffer.alloc(1024);
      })());
      const blobSize = 512 + SIZE + 1024;
      const layer: Descriptor = { mediaType: MT.tar, digest: await digestOf(make), size: blobSize };
      const lead = await maxLead(ws, layer, 'big.bin', make);
      assert.ok(lead < 8 << 20, `read ran ${lead} bytes ahead of the disk`);
    }));
});

describe('hostile layers (nothing is created outside the output directory)', () => {
  async function refuse(ws: Ws, layers: Descriptor[], code = 'E_UNSAFE_PATH', extra?: Partial<ExtractOptions>) {
    await fsp.mkdir(ws.out, { recursive: true });
    const before = ws.outside();
    await assert.rejects(extractLayers(layers, ws.opts(extra)), assertCode(code));
    assert.deepEqual(ws.outside(), before, 'something was created or changed outside the output dir');
    noTemps(ws);
  }

  for (const fp of ['../evil', 'a/../../evil', '/etc/x', '..', '.', '']) {
    it(`raw filepath ${JSON.stringify(fp)} is refused (path traversal / absolute path)`, () =>
      withWs(async (ws) => {
        const existed = existsSync('/etc/x');
        await refuse(ws, [rawLayer(ws, 'pwned', fp)]);
        assert.deepEqual(ws.inside(), []);
        assert.equal(existsSync('/etc/x'), existed);
        assert.deepEqual(ws.opened, [], 'the blob must not even be opened');
      }));
  }

  it('raw filepath that is absolute into the parent dir is refused', () =>
    withWs(async (ws) => {
      await refuse(ws, [rawLayer(ws, 'pwned', path.join(ws.parent, 'abs-evil'))]);
    }));

  it('raw filepath through a pre-existing symlinked directory in the output is refused', () =>
    withWs(async (ws) => {
      await fsp.mkdir(path.join(ws.parent, 'elsewhere'));
      await fsp.mkdir(ws.out);
      await fsp.symlink(path.join(ws.parent, 'elsewhere'), path.join(ws.out, 'models'));
      await refuse(ws, [rawLayer(ws, 'pwned', 'models/w.bin')]);
      await refuse(ws, [rawLayer(ws, 'pwned', 'models/sub/w.bin')]);
      assert.deepEqual(readdirSync(path.join(ws.parent, 'elsewhere')), []);
    }));

  it('tar entry through a pre-existing symlinked directory in the output is refused', () =>
    withWs(async (ws) => {
      await fsp.mkdir(path.join(ws.parent, 'elsewhere'));
      await fsp.mkdir(ws.out);
      await fsp.symlink(path.join(ws.parent, 'elsewhere'), path.join(ws.out, 'models'));
      await refuse(ws, [tarLayer(ws, await makeTar([{ name: 'models/w.bin', body: 'pwned' }]))]);
      await refuse(ws, [tarLayer(ws, await makeTar([{ name: 'models/', type: 'directory' }, { name: 'models/x', body: 'y' }]))]);
      assert.deepEqual(readdirSync(path.join(ws.parent, 'elsewhere')), []);
    }));

  const tarCases: [string, (ws: Ws) => TarEntry[]][] = [
    ['entry with ../ (path traversal)', () => [{ name: 'ok.txt', body: 'fine' }, { name: '../evil.txt', body: 'pwned' }]],
    ['entry with a/../../ (path traversal)', () => [{ name: 'a/../../evil.txt', body: 'pwned' }]],
    ['absolute entry name', (ws) => [{ name: path.join(ws.parent, 'abs-evil.txt'), body: 'pwned' }]],
    ['absolute /etc entry name', () => [{ name: '/etc/modctl-extract-test-evil', body: 'pwned' }]],
    ['symlink to / followed by a file through it', (ws) => [
      { name: 'root', type: 'symlink', linkname: '/' },
      { name: `root${ws.parent}/through-root.txt`, body: 'pwned' },
    ]],
    ['symlink link -> .. then link/escape', () => [
      { name: 'link', type: 'symlink', linkname: '..' },
      { name: 'link/escape.txt', body: 'pwned' },
    ]],
    ['symlink to an absolute path inside the parent', (ws) => [{ name: 'p', type: 'symlink', linkname: ws.parent }]],
    ['hardlink to /etc/passwd', () => [{ name: 'passwd', type: 'link', linkname: '/etc/passwd' }]],
    ['hardlink to ../outside.txt', () => [{ name: 'h', type: 'link', linkname: '../outside.txt' }]],
    ['hardlink to a path not extracted by this layer', () => [{ name: 'h', type: 'link', linkname: 'never-extracted.txt' }]],
    ['write through a symlink the same tar created (in-tree target)', () => [
      { name: 'sub/', type: 'directory' },
      { name: 'd', type: 'symlink', linkname: 'sub' },
      { name: 'd/file.txt', body: 'through the link' },
    ]],
    ['symlink whose target walks through an earlier symlink (a/up -> .., b -> a/up/..)', () => [
      { name: 'a/up', type: 'symlink', linkname: '..' },
      { name: 'b', type: 'symlink', linkname: 'a/up/..' },
    ]],
  ];
  for (const [what, entries] of tarCases) {
    it(`tar: ${what} is refused`, () =>
      withWs(async (ws) => {
        await fsp.writeFile(path.join(ws.parent, 'outside.txt'), 'outside');
        const existed = existsSync('/etc/modctl-extract-test-evil');
        const layer = tarLayer(ws, await makeTar(entries(ws)));
        await refuse(ws, [layer]);
        // Nothing of a failed tar layer lands under a final name, not even its harmless entries.
        assert.deepEqual(ws.inside(), []);
        assert.equal(existsSync('/etc/modctl-extract-test-evil'), existed);
        assert.equal(readFileSync('/etc/passwd', 'utf8').includes('pwned'), false);
      }));
  }

  it('tar: pax path record with traversal (hand-built header) is refused', () =>
    withWs(async (ws) => {
      const rec = Buffer.from(paxRecord('path', '../pax-evil.txt'));
      const body = Buffer.from('pwned');
      const tar = Buffer.concat([
        rawHeader('PaxHeaders/innocent.txt', rec.length, 'x'),
        pad512(rec),
        rawHeader('innocent.txt', body.length, '0'),
        pad512(body),
        Buffer.alloc(1024),
      ]);
      await refuse(ws, [tarLayer(ws, tar)]);
      assert.deepEqual(ws.inside(), []);
    }));

  it('tar: hostile gzip and zstd layers are refused the same way', () =>
    withWs(async (ws) => {
      const tar = await makeTar([{ name: 'ok.txt', body: 'fine' }, { name: '../evil.txt', body: 'pwned' }]);
      await refuse(ws, [tarLayer(ws, gzipSync(tar), 'tar+gzip')]);
      await refuse(ws, [tarLayer(ws, zstdStored(tar), 'tar+zstd')]);
      assert.deepEqual(ws.inside(), []);
    }));

  it('one hostile layer stops the others and its error is reported', () =>
    withWs(async (ws) => {
      const good = Array.from({ length: 6 }, (_, i) => rawLayer(ws, `good ${i}`, `g/${i}`));
      const bad = rawLayer(ws, 'pwned', '../evil');
      await refuse(ws, [...good.slice(0, 3), bad, ...good.slice(3)], 'E_UNSAFE_PATH', { concurrency: 2 });
    }));
});

describe('digest and size verification', () => {
  it('raw: digest mismatch fails and leaves no file', () =>
    withWs(async (ws) => {
      const l = rawLayer(ws, 'expected', 'm/model.bin');
      ws.blobs.set(l.digest, Buffer.from('tampered'));
      await assert.rejects(extractLayers([l], ws.opts()), assertCode('E_DIGEST_MISMATCH'));
      assert.deepEqual(ws.inside(), []);
    }));

  it('raw: too many bytes fail with E_SIZE_MISMATCH and leave no file', () =>
    withWs(async (ws) => {
      const l = rawLayer(ws, 'expected', 'model.bin');
      ws.blobs.set(l.digest, Buffer.from('expected plus more'));
      await assert.rejects(extractLayers([l], ws.opts()), assertCode('E_SIZE_MISMATCH'));
      assert.deepEqual(ws.inside(), []);
    }));

  it('raw: a source error mid-stream leaves no file', () =>
    withWs(async (ws) => {
      const l = rawLayer(ws, Buffer.alloc(200_000, 1), 'model.bin');
      const failing = () =>
        Readable.from(
          (async function* () {
            yield Buffer.alloc(100_000, 1);
            throw new Error('connection reset');
          })(),
        );
      await assert.rejects(extractLayers([l], ws.opts({ openBlob: async () => failing() })), /connection reset/);
      assert.deepEqual(ws.inside(), []);
    }));

  for (const enc of ['tar', 'tar+gzip'] as const) {
    it(`${enc}: digest mismatch fails and no entry of the layer is left`, () =>
      withWs(async (ws) => {
        const tar = await makeTar([
          { name: 'd/', type: 'directory' },
          { name: 'd/first.txt', body: 'first' },
          { name: 'd/link', type: 'symlink', linkname: 'first.txt' },
          { name: 'second.txt', body: 'second' },
          { name: 'last.bin', body: Buffer.alloc(100_000, 5) },
        ]);
        const good = enc === 'tar' ? tar : gzipSync(tar);
        const bad = Buffer.from(good);
        // tar: flip a byte of d/first.txt's content (after the d/ and d/first.txt headers), so the tar still parses.
        // gzip: flip a byte of the trailer CRC, so decoding can only fail at the very end.
        if (enc === 'tar') bad[1024 + 2] ^= 1;
        else bad[bad.length - 8] ^= 1;
        const layer = tarLayer(ws, bad, enc, sha256(good));
        // A trickling source: the earlier entries are fully written (to temp files) before the mismatch shows at
        // the end, so this checks that nothing is renamed into place before the digest is known.
        const openBlob = async (d: Descriptor) => trickle(ws.blobs.get(d.digest)!, 512);
        await assert.rejects(extractLayers([layer], ws.opts({ openBlob })), (e: unknown) => {
          const code = (e as { code?: string }).code ?? '';
          const allowed = enc === 'tar' ? ['E_DIGEST_MISMATCH'] : ['E_DIGEST_MISMATCH', 'Z_DATA_ERROR'];
          assert.ok(allowed.includes(code), `got ${String(e)}`);
          return true;
        });
        assert.deepEqual(ws.inside(), []);
      }));
  }

  it('tar: truncated blob fails with E_SIZE_MISMATCH and leaves nothing', () =>
    withWs(async (ws) => {
      const tar = await makeTar([{ name: 'a.txt', body: 'a'.repeat(5000) }]);
      const layer = tarLayer(ws, tar);
      ws.blobs.set(layer.digest, tar.subarray(0, 3000));
      await assert.rejects(extractLayers([layer], ws.opts()), assertCode('E_SIZE_MISMATCH'));
      assert.deepEqual(ws.inside(), []);
    }));

  it('tar: corrupt tar with a correct digest fails with E_TAR_INVALID', () =>
    withWs(async (ws) => {
      const garbage = Buffer.alloc(1536, 'g');
      await assert.rejects(extractLayers([tarLayer(ws, garbage)], ws.opts()), assertCode('E_TAR_INVALID'));
      assert.deepEqual(ws.inside(), []);
    }));
});

describe('existing files', () => {
  it('raw: identical file is kept without opening the blob, and its mode/mtime restored', () =>
    withWs(async (ws) => {
      const l = rawLayer(ws, 'same', 'w.bin', { mode: 0o755, mtime: '2019-09-09T09:09:09Z' });
      await fsp.mkdir(ws.out);
      await fsp.writeFile(path.join(ws.out, 'w.bin'), 'same', { mode: 0o600 });
      const res = await extractLayers([l], ws.opts());
      assert.deepEqual(res.files, [{ path: 'w.bin', size: 4, digest: l.digest, action: 'kept' }]);
      assert.deepEqual(ws.opened, []);
      assert.equal(mode(path.join(ws.out, 'w.bin')), 0o755);
      assert.equal(statSync(path.join(ws.out, 'w.bin')).mtime.toISOString(), '2019-09-09T09:09:09.000Z');
    }));

  for (const existing of ['diff', 'different size']) {
    it(`raw: a different existing file (${existing}) is refused without --force`, () =>
      withWs(async (ws) => {
        const l = rawLayer(ws, 'same', 'w.bin');
        await fsp.mkdir(ws.out);
        await fsp.writeFile(path.join(ws.out, 'w.bin'), existing);
        await assert.rejects(extractLayers([l], ws.opts()), (e: unknown) => {
          assertCode('E_EXISTS')(e);
          assert.match((e as Error).message, /w\.bin/);
          assert.equal((e as { hint?: string }).hint, 'use --force to overwrite');
          return true;
        });
        assert.equal(readFileSync(path.join(ws.out, 'w.bin'), 'utf8'), existing);
        assert.deepEqual(ws.opened, []);
        noTemps(ws);
      }));
  }

  it('raw: a different existing file is replaced with force', () =>
    withWs(async (ws) => {
      const l = rawLayer(ws, 'new content', 'w.bin');
      await fsp.mkdir(ws.out);
      await fsp.writeFile(path.join(ws.out, 'w.bin'), 'old content'); // same size: hashed, then replaced
      const res = await extractLayers([l], ws.opts({ force: true }));
      assert.equal(res.files[0].action, 'written');
      assert.equal(readFileSync(path.join(ws.out, 'w.bin'), 'utf8'), 'new content');
      noTemps(ws);
    }));

  it('raw: with force, a failed download leaves the old file untouched', () =>
    withWs(async (ws) => {
      const l = rawLayer(ws, 'new content', 'w.bin');
      ws.blobs.set(l.digest, Buffer.from('bad content'));
      await fsp.mkdir(ws.out);
      await fsp.writeFile(path.join(ws.out, 'w.bin'), 'old');
      await assert.rejects(extractLayers([l], ws.opts({ force: true })), assertCode('E_DIGEST_MISMATCH'));
      assert.equal(readFileSync(path.join(ws.out, 'w.bin'), 'utf8'), 'old');
      noTemps(ws);
    }));

  it('raw: an existing directory at the file path is refused even with force', () =>
    withWs(async (ws) => {
      await fsp.mkdir(path.join(ws.out, 'w.bin'), { recursive: true });
      await assert.rejects(extractLayers([rawLayer(ws, 'x', 'w.bin')], ws.opts({ force: true })), assertCode('E_EXISTS'));
    }));

  it('tar: identical entries kept, different refused without force, replaced with force', () =>
    withWs(async (ws) => {
      const tar = await makeTar([
        { name: 'a.txt', body: 'alpha' },
        { name: 'b.txt', body: 'bravo' },
      ]);
      const layer = tarLayer(ws, tar);
      await fsp.mkdir(ws.out);
      await fsp.writeFile(path.join(ws.out, 'a.txt'), 'alpha');
      await fsp.writeFile(path.join(ws.out, 'b.txt'), 'BRAVO');
      await assert.rejects(extractLayers([layer], ws.opts()), assertCode('E_EXISTS'));
      assert.equal(readFileSync(path.join(ws.out, 'b.txt'), 'utf8'), 'BRAVO');
      noTemps(ws);
      const res = await extractLayers([layer], ws.opts({ force: true }));
      assert.deepEqual(
        res.files.map((f) => [f.path, f.action]),
        [
          ['a.txt', 'kept'],
          ['b.txt', 'written'],
        ],
      );
      assert.equal(readFileSync(path.join(ws.out, 'b.txt'), 'utf8'), 'bravo');
    }));
});

describe('abort', () => {
  it('refuses to start when the signal already fired', () =>
    withWs(async (ws) => {
      const ac = new AbortController();
      ac.abort();
      await assert.rejects(extractLayers([rawLayer(ws, 'x', 'x')], ws.opts({ signal: ac.signal })), assertCode('E_INTERRUPTED'));
      assert.deepEqual(ws.opened, []);
    }));

  function stalling(first: Buffer): Readable {
    let sent = false;
    return new Readable({
      read() {
        if (!sent) {
          sent = true;
          this.push(first);
        }
        // then never push again: only an abort ends this
      },
    });
  }

  it('aborts a raw layer mid-stream, destroys the source and removes the temp file', () =>
    withWs(async (ws) => {
      const l = rawLayer(ws, Buffer.alloc(100_000, 7), 'slow/w.bin');
      const ac = new AbortController();
      let src: Readable | undefined;
      const p = extractLayers(
        [l],
        ws.opts({
          signal: ac.signal,
          openBlob: async () => (src = stalling(Buffer.alloc(1000, 7))),
          onProgress: () => setImmediate(() => ac.abort()),
        }),
      );
      await assert.rejects(p, assertCode('E_INTERRUPTED'));
      assert.equal(src?.destroyed, true);
      assert.deepEqual(ws.inside(), []);
    }));

  for (const enc of ['tar', 'tar+gzip'] as const) {
    it(`aborts a ${enc} layer mid-stream and leaves nothing`, () =>
      withWs(async (ws) => {
        const tar = await makeTar([
          { name: 'done.txt', body: 'complete entry' },
          { name: 'big.bin', body: Buffer.alloc(200_000, 3) },
        ]);
        const blob = enc === 'tar' ? tar : gzipSync(tar);
        const l = tarLayer(ws, blob, enc);
        const ac = new AbortController();
        let src: Readable | undefined;
        const p = extractLayers(
          [l],
          ws.opts({
            signal: ac.signal,
            // Enough to complete the first entry and start the second.
            openBlob: async () => (src = stalling(blob.subarray(0, enc === 'tar' ? 1024 + 512 + 4096 : blob.length - 50))),
            onProgress: () => setTimeout(() => ac.abort(), 20),
          }),
        );
        await assert.rejects(p, assertCode('E_INTERRUPTED'));
        assert.equal(src?.destroyed, true);
        assert.deepEqual(ws.inside(), []);
      }));
  }
});
