/**
 * Worker thread that copies one file into the store while hashing it: a single read of the source, hashing done off
 * the main thread so several files proceed in parallel on separate cores. Synchronous IO is deliberate here: the
 * worker has nothing else to do, and 1 MiB reads keep the buffer cache-resident.
 */
import { parentPort } from 'node:worker_threads';
import { createHash } from 'node:crypto';
import fs from 'node:fs';

interface Job {
  id: number;
  src: string;
  dst: string;
}

// 1 MiB measured faster than 8 MiB here (the buffer stays in cache between read, hash and write).
const BUF = Buffer.allocUnsafe(1 << 20);

parentPort!.on('message', (job: Job) => {
  let inFd = -1;
  let outFd = -1;
  try {
    inFd = fs.openSync(job.src, 'r');
    outFd = fs.openSync(job.dst, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o644);
    const hash = createHash('sha256');
    let size = 0;
    let lastReport = 0;
    for (;;) {
      const n = fs.readSync(inFd, BUF, 0, BUF.length, null);
      if (n === 0) break;
      const chunk = n === BUF.length ? BUF : BUF.subarray(0, n);
      hash.update(chunk);
      let off = 0;
      while (off < n) off += fs.writeSync(outFd, chunk, off, n - off);
      size += n;
      if (size - lastReport >= 32 << 20) {
        parentPort!.postMessage({ id: job.id, progress: size - lastReport });
        lastReport = size;
      }
    }
    if (size > lastReport) parentPort!.postMessage({ id: job.id, progress: size - lastReport });
    parentPort!.postMessage({ id: job.id, digest: 'sha256:' + hash.digest('hex'), size });
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    parentPort!.postMessage({ id: job.id, error: { message: err.message, code: err.code } });
  } finally {
    if (inFd >= 0) fs.closeSync(inFd);
    if (outFd >= 0) fs.closeSync(outFd);
  }
});
