import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { readSafetensorsHeader } from '../../../src/weights/safetensors.js';
import { ModctlError } from '../../../src/errors.js';
import { tmpDir } from '../../support/tmp.js';
import { safetensorsHeaderBytes, writeSafetensors } from './fixtures.js';

const dir = tmpDir('modctl-st-');
let n = 0;
function rawFile(bytes: Buffer): string {
  const p = path.join(dir, `raw${n++}.safetensors`);
  writeFileSync(p, bytes);
  return p;
}
function headerWith(json: string, dataBytes = 0): Buffer {
  const body = Buffer.from(json);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(body.length));
  return Buffer.concat([len, body, Buffer.alloc(dataBytes)]);
}

test('reads tensors, metadata and the header size', async () => {
  const p = path.join(dir, 'model.safetensors');
  const spec = {
    metadata: { format: 'pt', architecture: 'qwen2' },
    tensors: { 'a.weight': { dtype: 'BF16', shape: [4, 8] }, 'b.bias': { dtype: 'F32', shape: [8] }, scalar: { dtype: 'I64', shape: [] } },
  };
  writeSafetensors(p, spec);
  const h = await readSafetensorsHeader(p);
  assert.deepEqual(h.metadata, { format: 'pt', architecture: 'qwen2' });
  assert.deepEqual(h.tensors['a.weight'], { dtype: 'BF16', shape: [4, 8], dataOffsets: [0, 64] });
  assert.deepEqual(h.tensors['b.bias'], { dtype: 'F32', shape: [8], dataOffsets: [64, 96] });
  assert.deepEqual(h.tensors.scalar, { dtype: 'I64', shape: [], dataOffsets: [96, 104] });
  assert.equal(h.headerSize, safetensorsHeaderBytes(spec).header.length - 8);
  assert.equal(h.headerSize % 8, 0);
});

test('non-string metadata values are stringified (Docker prints them with %v)', async () => {
  const h = await readSafetensorsHeader(rawFile(headerWith('{"__metadata__":{"n":3,"ok":true,"o":{"a":1}}}')));
  assert.deepEqual(h.metadata, { n: '3', ok: 'true', o: '{"a":1}' });
});

async function rejects(p: string, re: RegExp, opts?: { maxHeaderBytes?: number }): Promise<void> {
  await assert.rejects(readSafetensorsHeader(p, opts), (e: unknown) => {
    assert.ok(e instanceof ModctlError, String(e));
    assert.equal(e.code, 'E_SAFETENSORS_INVALID');
    assert.match(e.message, re);
    return true;
  });
}

test('corrupt headers fail with E_SAFETENSORS_INVALID and a precise reason', async () => {
  await rejects(rawFile(Buffer.from([1, 2, 3])), /too short for the 8-byte header length/);
  await rejects(rawFile(Buffer.from('version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 1\n')), /header length \d+ exceeds the 104857600-byte limit/);
  await rejects(rawFile(headerWith('{"a":1}')), /exceeds the 4-byte limit/, { maxHeaderBytes: 4 });
  const short = headerWith('{}');
  short.writeBigUInt64LE(1000n);
  await rejects(rawFile(short), /header length 1000 runs past the end of the file/);
  await rejects(rawFile(headerWith('{"a": ')), /not valid JSON/);
  await rejects(rawFile(headerWith('[1,2]')), /not a JSON object/);
  await rejects(rawFile(headerWith('{"w":{"shape":[1],"data_offsets":[0,1]}}', 1)), /tensor "w" has no dtype/);
  await rejects(rawFile(headerWith('{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}', 4)), /tensor "w" has an invalid shape/);
  await rejects(rawFile(headerWith('{"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}', 4)), /invalid shape/);
  await rejects(rawFile(headerWith('{"w":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}', 4)), /invalid data_offsets/);
  await rejects(rawFile(headerWith('{"w":{"dtype":"F32","shape":[1],"data_offsets":[0]}}', 4)), /invalid data_offsets/);
  await rejects(rawFile(headerWith('{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}', 8)), /ends at data offset 16 but the file holds only 8 data bytes \(truncated\?\)/);
  await rejects(rawFile(headerWith('{"__metadata__":[1]}')), /__metadata__ is not an object/);
  await rejects(dir, /not a regular file/);
});
