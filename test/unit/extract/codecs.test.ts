import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { decodeLayer } from '../../../src/extract/codecs.js';

/** Produced once with the zstd CLI by fixtures/tars/make-zstd-fixture.mjs (zstd -19 --check, no content size). */
const ZSTD_FIXTURE = new URL('../../../../fixtures/tars/zstd-layer.tar.zst', import.meta.url);
/** sha256 and size of the tar inside the fixture, as printed by the generator. */
const ZSTD_FIXTURE_TAR_SHA256 = 'd76e2951008f9e9fbf949d49aa3be117ee00e5334a9b39b2ad4b87bd153ffd1d';
const ZSTD_FIXTURE_TAR_SIZE = 4572672;

function source(buf: Buffer, chunk = 65536): Readable {
  return Readable.from(
    (function* () {
      for (let i = 0; i < buf.length; i += chunk) yield buf.subarray(i, i + chunk);
    })(),
  );
}

async function collect(r: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of r) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function skippableFrame(payload: Buffer): Buffer {
  const h = Buffer.alloc(8);
  h.writeUInt32LE(0x184d2a53, 0);
  h.writeUInt32LE(payload.length, 4);
  return Buffer.concat([h, payload]);
}

describe('decodeLayer', () => {
  it('passes raw and tar through unchanged', async () => {
    const data = Buffer.from('plain bytes');
    const src = source(data);
    assert.equal(decodeLayer('tar', src), src);
    assert.deepEqual(await collect(decodeLayer('raw', source(data))), data);
  });

  it('gunzips tar+gzip', async () => {
    const data = Buffer.alloc(300_000, 'model');
    assert.deepEqual(await collect(decodeLayer('tar+gzip', source(gzipSync(data), 1000))), data);
  });

  it('reports corrupt gzip as an error', async () => {
    await assert.rejects(collect(decodeLayer('tar+gzip', source(Buffer.from('not gzip at all')))));
  });

  it('decodes the zstd CLI fixture (compressed, RLE and raw blocks, checksum)', async () => {
    const zst = readFileSync(ZSTD_FIXTURE);
    for (const chunk of [1, 7, 4096, 1 << 20]) {
      // Chunk sizes from 1 byte up: frame headers and block headers get split at every possible offset.
      const out = await collect(decodeLayer('tar+zstd', source(zst, chunk)));
      assert.equal(out.length, ZSTD_FIXTURE_TAR_SIZE, `chunk ${chunk}`);
      assert.equal(sha256(out), ZSTD_FIXTURE_TAR_SHA256, `chunk ${chunk}`);
    }
  });

  it('decodes concatenated zstd frames and skips skippable frames', async () => {
    const zst = readFileSync(ZSTD_FIXTURE);
    const single = await collect(decodeLayer('tar+zstd', source(zst)));
    const input = Buffer.concat([skippableFrame(Buffer.from('meta')), zst, skippableFrame(Buffer.alloc(0)), zst]);
    const out = await collect(decodeLayer('tar+zstd', source(input, 3000)));
    assert.equal(out.length, single.length * 2);
    assert.ok(out.equals(Buffer.concat([single, single])));
  });

  it('decodes an empty input and a stream of only skippable frames to nothing', async () => {
    assert.equal((await collect(decodeLayer('tar+zstd', source(Buffer.alloc(0))))).length, 0);
    assert.equal((await collect(decodeLayer('tar+zstd', source(skippableFrame(Buffer.from('x')))))).length, 0);
  });

  it('fails on truncated zstd data', async () => {
    const zst = readFileSync(ZSTD_FIXTURE);
    await assert.rejects(collect(decodeLayer('tar+zstd', source(zst.subarray(0, zst.length - 100)))), (e: unknown) => {
      assert.equal((e as { code?: string }).code, 'E_DECOMPRESS');
      return true;
    });
  });

  it('fails on data that is not zstd', async () => {
    await assert.rejects(collect(decodeLayer('tar+zstd', source(Buffer.from('PK\x03\x04 definitely a zip')))), (e: unknown) => {
      assert.equal((e as { code?: string }).code, 'E_DECOMPRESS');
      return true;
    });
  });

  it('refuses frames that would need a huge window (memory bomb in the header)', async () => {
    // Window descriptor 0xA0: exponent 20 → 1 GiB window; then one empty last raw block.
    const huge = Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, 0xa0, 0x01, 0x00, 0x00]);
    await assert.rejects(collect(decodeLayer('tar+zstd', source(huge))), /window/);
    // Single-segment frame declaring 1 GiB of content (4-byte content size field).
    const fcs = Buffer.alloc(4);
    fcs.writeUInt32LE(1 << 30);
    const single = Buffer.concat([Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0xa0]), fcs, Buffer.from([0x01, 0x00, 0x00])]);
    await assert.rejects(collect(decodeLayer('tar+zstd', source(single))), /window/);
  });

  it('respects backpressure: a paused consumer does not make zstd output pile up', async () => {
    // The fixture is 140 KiB of input that expands to 4.4 MiB (4 MiB of zeros). Without backpressure the decoder
    // would decode all of it into its buffer as soon as the (fast) source delivers the input.
    const zst = readFileSync(ZSTD_FIXTURE);
    const src = source(zst);
    const dec = decodeLayer('tar+zstd', src);
    dec.pause();
    await new Promise((r) => dec.once('readable', r));
    await new Promise((r) => setTimeout(r, 100));
    assert.ok(dec.readableLength <= (1 << 20) + (256 << 10), `buffered ${dec.readableLength} bytes while paused`);
    const rest = await collect(dec);
    assert.equal(sha256(rest), ZSTD_FIXTURE_TAR_SHA256);
  });

  it('destroying the decoded stream destroys the source', async () => {
    const zst = readFileSync(ZSTD_FIXTURE);
    const src = source(zst, 1000);
    const dec = decodeLayer('tar+zstd', src);
    dec.destroy();
    await new Promise((r) => setImmediate(r));
    assert.equal(src.destroyed, true);
  });

  it('passes source errors through', async () => {
    const src = new Readable({ read() { this.destroy(new Error('network reset')); } });
    await assert.rejects(collect(decodeLayer('tar+zstd', src)), /network reset/);
    const src2 = new Readable({ read() { this.destroy(new Error('network reset')); } });
    await assert.rejects(collect(decodeLayer('tar+gzip', src2)), /network reset/);
  });
});
