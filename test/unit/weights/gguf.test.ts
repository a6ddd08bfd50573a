import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { GGUF_VALUE_TYPES, readGgufHeader } from '../../../src/weights/gguf.js';
import { ModctlError } from '../../../src/errors.js';
import { tmpDir } from '../../support/tmp.js';
import { arr, f32, ggufHeaderBytes, str, u32, writeGguf, type GgufSpec } from './fixtures.js';

const dir = tmpDir('modctl-gguf-');
let n = 0;
function file(spec: GgufSpec): string {
  const p = path.join(dir, `m${n++}.gguf`);
  writeGguf(p, spec);
  return p;
}
function rawFile(bytes: Buffer): string {
  const p = path.join(dir, `raw${n++}.gguf`);
  writeFileSync(p, bytes);
  return p;
}

const FULL: GgufSpec = {
  kv: [
    ['general.architecture', str('llama')],
    ['general.name', str('Tiny Llama ✓')],
    ['general.file_type', u32(15)],
    ['llama.context_length', u32(4096)],
    ['llama.rope.freq_base', f32(10000)],
    ['llama.attention.layer_norm_rms_epsilon', f32(1e-5)],
    ['general.tags', arr('str', ['a', 'b c'])],
    ['llama.rope.dims', arr('u32', [1, 2, 3])],
    ['u8', { type: 'u8', value: 200 }],
    ['i8', { type: 'i8', value: -5 }],
    ['u16', { type: 'u16', value: 65000 }],
    ['i16', { type: 'i16', value: -30000 }],
    ['i32', { type: 'i32', value: -7 }],
    ['bool', { type: 'bool', value: true }],
    ['u64', { type: 'u64', value: 12345678901n }],
    ['u64.big', { type: 'u64', value: 2n ** 60n }],
    ['i64', { type: 'i64', value: -5n }],
    ['f64', { type: 'f64', value: 0.125 }],
  ],
  tensors: [
    { name: 'token_embd.weight', shape: [64, 100], type: 12 },
    { name: 'output_norm.weight', shape: [64], type: 0 },
  ],
};

test('reads a v3 header: version, counts, every value type, tensor infos', async () => {
  const h = await readGgufHeader(file(FULL));
  assert.equal(h.version, 3);
  assert.equal(h.littleEndian, true);
  assert.equal(h.tensorCount, 2);
  assert.equal(h.kv['general.architecture'], 'llama');
  assert.equal(h.kv['general.name'], 'Tiny Llama ✓');
  assert.equal(h.kv['general.file_type'], 15);
  assert.equal(h.kvTypes['general.file_type'], GGUF_VALUE_TYPES.UINT32);
  assert.equal(h.kv['llama.rope.freq_base'], 10000);
  assert.equal(h.kv['llama.attention.layer_norm_rms_epsilon'], Math.fround(1e-5));
  assert.deepEqual(h.kv['general.tags'], ['a', 'b c']);
  assert.deepEqual(h.kv['llama.rope.dims'], [1, 2, 3]);
  assert.equal(h.kvTypes['llama.rope.dims'], GGUF_VALUE_TYPES.ARRAY);
  assert.equal(h.kv.u8, 200);
  assert.equal(h.kv.i8, -5);
  assert.equal(h.kv.u16, 65000);
  assert.equal(h.kv.i16, -30000);
  assert.equal(h.kv.i32, -7);
  assert.equal(h.kv.bool, true);
  assert.equal(h.kv.u64, 12345678901);
  assert.equal(h.kv['u64.big'], 2n ** 60n, 'values beyond 2^53 stay exact as bigint');
  assert.equal(h.kv.i64, -5);
  assert.equal(h.kv.f64, 0.125);
  assert.deepEqual(h.tensorInfos, [
    { name: 'token_embd.weight', shape: [64, 100], type: 12, offset: 0 },
    { name: 'output_norm.weight', shape: [64], type: 0, offset: 6400 },
  ]);
  assert.deepEqual(h.skippedArrays, {});
  const { header } = ggufHeaderBytes(FULL);
  assert.ok(h.headerBytes > 0 && h.headerBytes <= header.length && header.length - h.headerBytes < 32, 'header ends before the alignment padding');
});

test('long arrays are walked but not kept when keepArraysUpTo is set; tensor infos can be skipped', async () => {
  const p = file({ kv: [['tokenizer.ggml.tokens', arr('str', Array.from({ length: 51 }, (_, i) => `t${i}`))], ['after', u32(7)]], tensors: [{ name: 'w', shape: [2, 2] }] });
  const h = await readGgufHeader(p, { keepArraysUpTo: 50, tensorInfos: false });
  assert.equal(h.kv['tokenizer.ggml.tokens'], undefined);
  assert.deepEqual(h.skippedArrays, { 'tokenizer.ggml.tokens': 51 });
  assert.equal(h.kv.after, 7, 'values after a skipped array are still read');
  const nums = await readGgufHeader(file({ kv: [['scores', arr('f32', new Array(60).fill(0.5))], ['x', str('y')]] }), { keepArraysUpTo: 50 });
  assert.deepEqual(nums.skippedArrays, { scores: 60 });
  assert.equal(nums.kv.x, 'y');
  assert.equal(h.tensorInfos, undefined);
  assert.equal(h.tensorCount, 1);
});

test('big-endian and version 1 (32-bit counts) files read the same', async () => {
  const spec: GgufSpec = { kv: [['general.architecture', str('gpt2')], ['general.file_type', u32(1)]], tensors: [{ name: 'w', shape: [3, 5], type: 1 }] };
  for (const variant of [{ bigEndian: true }, { version: 1 }, { version: 2 }]) {
    const h = await readGgufHeader(file({ ...spec, ...variant }));
    assert.equal(h.kv['general.architecture'], 'gpt2', JSON.stringify(variant));
    assert.equal(h.kv['general.file_type'], 1);
    assert.deepEqual(h.tensorInfos?.[0].shape, [3, 5]);
    assert.equal(h.littleEndian, !variant.bigEndian);
    assert.equal(h.version, variant.version ?? 3);
  }
});

test('only the header is read: a huge sparse data section costs nothing', async () => {
  // 64 GiB of declared tensor data; reading it would time out or fail.
  const p = file({ kv: [['general.architecture', str('llama')]], tensors: [{ name: 'w', shape: [65536, 1048576], type: 0 }] });
  const h = await readGgufHeader(p);
  assert.deepEqual(h.tensorInfos?.[0].shape, [65536, 1048576]);
});

async function rejects(p: string, re: RegExp, opts?: Parameters<typeof readGgufHeader>[1]): Promise<void> {
  await assert.rejects(readGgufHeader(p, opts), (e: unknown) => {
    assert.ok(e instanceof ModctlError, String(e));
    assert.equal(e.code, 'E_GGUF_INVALID');
    assert.match(e.message, re);
    assert.ok(e.message.includes(p), 'the message names the file');
    return true;
  });
}

test('corrupt or hostile headers fail with E_GGUF_INVALID and a precise reason', async () => {
  const good = ggufHeaderBytes({ kv: [['general.architecture', str('llama')]], tensors: [{ name: 'w', shape: [4] }] }).header;
  await rejects(rawFile(Buffer.alloc(0)), /unexpected end of file reading magic/);
  await rejects(rawFile(Buffer.from('version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n')), /bad magic "vers"/);
  await rejects(rawFile(Buffer.concat([Buffer.from('GGUF'), Buffer.from([4, 0, 0, 0])])), /unsupported GGUF version 4/);
  await rejects(rawFile(good.subarray(0, 30)), /metadata count 1 does not fit in the file/);
  await rejects(rawFile(good.subarray(0, 50)), /unexpected end of file reading key #0 at offset 32/);
  await rejects(rawFile(good.subarray(0, 80)), /tensor count 1 does not fit in the file/);
  await rejects(rawFile(good.subarray(0, 95)), /unexpected end of file reading (dimension|type|offset)/);
  await rejects(file({ kv: [], kvCount: 2n ** 40n }), /metadata count 1099511627776 exceeds the limit of 65536/);
  await rejects(file({ kv: [['a', u32(1)]], kvCount: 60_000 }), /metadata count 60000 does not fit in the file/);
  await rejects(file({ kv: [], tensorCount: 5_000_000 }), /tensor count 5000000 exceeds the limit/);
  await rejects(file({ kv: [], tensorCount: 1000 }), /tensor count 1000 does not fit in the file/);
  await rejects(file({ kv: [['a', u32(1)], ['a', u32(2)]] }), /duplicate key "a"/);
  await rejects(file({ kv: [['big', arr('u8', new Array(100).fill(0))]] }), /array big has 100 elements, over the limit of 10/, { limits: { maxArrayLength: 10 } });
  await rejects(file({ kv: [['s', str('x'.repeat(100))]] }), /s is 100 bytes, over the 64-byte limit/, { limits: { maxStringBytes: 64 } });
  await rejects(file({ kv: [], tensors: [{ name: 'w', shape: [1, 1, 1, 1, 1, 1, 1, 1, 1] }] }), /tensor w has 9 dimensions/);
  await rejects(file({ kv: [['a', u32(1)]] }), /header is larger than the 16-byte limit/, { limits: { maxHeaderBytes: 16 } });

  // A string length of 2^62 in the first key.
  const hugeLen = Buffer.alloc(24);
  hugeLen.write('GGUF', 0, 'latin1');
  hugeLen.writeUInt32LE(3, 4);
  hugeLen.writeBigUInt64LE(0n, 8);
  hugeLen.writeBigUInt64LE(1n, 16);
  const withKey = Buffer.concat([hugeLen, Buffer.from(new BigUint64Array([2n ** 62n]).buffer), Buffer.alloc(16)]);
  await rejects(rawFile(withKey), /key #0 length 4611686018427387904 is out of range|over the/);

  // Arrays of arrays and arrays of an unknown type.
  const nested = ggufHeaderBytes({ kv: [['k', arr('u32', [1])]] }).header;
  const itemTypeAt = 4 + 4 + 8 + 8 + 8 + 1 + 4;
  nested.writeUInt32LE(9, itemTypeAt);
  await rejects(rawFile(nested), /nested array in k/);
  nested.writeUInt32LE(77, itemTypeAt);
  await rejects(rawFile(nested), /unknown value type 77 for k\[\]/);

  // An unknown value type (13).
  const unk = ggufHeaderBytes({ kv: [['k', u32(1)]] }).header;
  const typeAt = 4 + 4 + 8 + 8 + 8 + 1; // magic, version, counts, key length, key
  unk.writeUInt32LE(13, typeAt);
  await rejects(rawFile(unk), /unknown value type 13 for k/);
});

test('a directory or a missing file fails clearly', async () => {
  await assert.rejects(readGgufHeader(path.join(dir, 'missing.gguf')), (e: unknown) => e instanceof ModctlError && e.code === 'E_GGUF_INVALID' && /cannot open/.test(e.message));
  await rejects(dir, /not a regular file/);
});
