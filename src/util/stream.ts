import { Transform, type TransformCallback } from 'node:stream';

/** Drop the first `n` bytes of a stream (a registry that ignored our Range and sent the whole blob). */
export function skipBytes(n: number): Transform {
  let left = n;
  return new Transform({
    highWaterMark: 1 << 20,
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      if (left >= chunk.length) {
        left -= chunk.length;
        cb();
        return;
      }
      const rest = left > 0 ? chunk.subarray(left) : chunk;
      left = 0;
      cb(null, rest);
    },
  });
}

/** Read a whole (small) stream such as stdin, refusing more than `max` bytes via `tooBig()`. */
export async function readAllCapped(stream: NodeJS.ReadableStream, max: number, tooBig: () => Error): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const c of stream) {
    const b = Buffer.isBuffer(c) ? c : Buffer.from(c as string);
    total += b.length;
    if (total > max) throw tooBig();
    chunks.push(b);
  }
  return Buffer.concat(chunks);
}
