/**
 * Worker-thread entry for fetch-pool.ts: runs fetch-core (download) and send-core (upload) jobs, several at a time,
 * each on its own socket, and reports progress and outcomes.
 * Messages in: {type:'run'|'send', id, job} | {type:'abort', id}. Out: {id, pos} | {id, outcome}.
 */
import { parentPort } from 'node:worker_threads';
import { runFetch, type FetchControl, type FetchJob } from './fetch-core.js';
import { runSend, type SendJob } from './send-core.js';

/** At most one progress message per job per this many milliseconds (plus the last). */
const PROGRESS_MS = 50;

const running = new Map<number, FetchControl>();
const port = parentPort!;

port.on('message', (m: { type: 'run'; id: number; job: FetchJob } | { type: 'send'; id: number; job: SendJob } | { type: 'abort'; id: number }) => {
  if (m.type === 'abort') {
    running.get(m.id)?.abort?.();
    return;
  }
  let last = 0;
  let lastPos = -1;
  const ctl: FetchControl = {
    onProgress: (pos) => {
      const now = Date.now();
      if (now - last < PROGRESS_MS) {
        lastPos = pos;
        return;
      }
      last = now;
      lastPos = -1;
      port.postMessage({ id: m.id, pos });
    },
  };
  running.set(m.id, ctl);
  const work: Promise<unknown> = m.type === 'send' ? runSend(m.job, ctl) : runFetch(m.job, ctl);
  void work.then((outcome) => {
    running.delete(m.id);
    if (lastPos >= 0) port.postMessage({ id: m.id, pos: lastPos });
    port.postMessage({ id: m.id, outcome });
  });
});
