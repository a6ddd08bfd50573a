#!/usr/bin/env node
// Registry benchmark: a 2 GiB artifact (4 × 512 MiB raw layers of random data + small files) built into a local
// modctl store (SOURCE_DATE_EPOCH set), then per round, against a fresh docker-registry 2.8 (fresh data dir, fresh
// repository names), alternating the tools (the order rotates every round):
//   push:  modctl push | skopeo copy oci:<store>:<ref> → docker:// | curl POST + PUT -T of the 4 blobs (4 in parallel)
//   re-push of the unchanged artifact (every blob HEADs present)
//   pull:  modctl pull into a fresh store | skopeo copy docker:// → oci:<fresh dir> | curl GET of the 4 blobs (4 in parallel)
//   hooks: `pull --extract-dir --extract-from-remote` (vs curl download) and `build --output-remote` (vs modctl push),
//          measured only when this build's CLI has the flag, else reported as skipped. Each is timed next to its own
//          baseline (a curl download, a plain push to a fresh repository), in an order that alternates by round, so
//          both meet the same registry and page-cache state; the ratios use those adjacent baselines (the ratios
//          against the round's first pull/push rows are reported too).
// Prints JSON: per-run rows, medians, median ratios, peak RSS, targets. Stops the registry and removes its data
// (and everything it pulls) after every round.
// Usage: node bench/registry.mjs [--runs N] [--size-mib M]   (work dir: $BENCH_DIR or .bench/)
import { promises as fsp, readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { BIN, ROOT, makeModelDir, median, round, sh, timed } from './lib.mjs';
import { startRegistry } from '../dist/test/support/registry.js';

const args = process.argv.slice(2);
const opt = (name, dflt) => (args.includes(name) ? Number(args[args.indexOf(name) + 1]) || dflt : dflt);
const runs = opt('--runs', 3);
const sizeMiB = opt('--size-mib', 512);
const FILES = 4;
const work = path.join(process.env.BENCH_DIR || path.join(ROOT, '.bench'), 'registry');
const model = path.join(work, `model-${sizeMiB}`);
const store = path.join(work, `store-${sizeMiB}`);
const scratch = path.join(work, 'scratch');
const LOCAL_REF = 'bench.local/model:v1';
const node = process.execPath;
const modctl = (...a) => [BIN, '--no-progress', ...a];
const log = (...a) => process.stderr.write(`[bench/registry] ${a.join(' ')}\n`);

// ---- the artifact ---------------------------------------------------------------------------------------------
await fsp.mkdir(work, { recursive: true });
await makeModelDir(model, { files: FILES, fileSize: sizeMiB << 20 });
const epochEnv = { SOURCE_DATE_EPOCH: '1700000000' };
await timed(node, modctl('--storage-dir', store, 'build', '-t', LOCAL_REF, '-f', path.join(model, 'Modelfile'), model), { env: epochEnv });
const blobPath = (root, digest) => path.join(root, 'blobs', ...digest.split(':'));
const index = JSON.parse(readFileSync(path.join(store, 'index.json'), 'utf8'));
const rootDesc = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === LOCAL_REF);
if (!rootDesc) throw new Error(`${LOCAL_REF} not found in ${store}/index.json`);
const manifest = JSON.parse(readFileSync(blobPath(store, rootDesc.digest), 'utf8'));
const bigLayers = [...manifest.layers].sort((a, b) => b.size - a.size).slice(0, FILES);
const totalBytes = manifest.layers.reduce((s, l) => s + l.size, manifest.config.size);

// ---- optional rows: only when this build has the flag ---------------------------------------------------------
const help = (cmd) => {
  try {
    return execFileSync(node, [BIN, cmd, '--help'], { encoding: 'utf8' });
  } catch (e) {
    return String(e.stdout ?? '');
  }
};
const pullHelp = help('pull');
const buildHelp = help('build');
const hasExtractFromRemote = pullHelp.includes('--extract-from-remote') && pullHelp.includes('--extract-dir');
const hasOutputRemote = buildHelp.includes('--output-remote');
const SKIPPED = 'not supported by this build';

// ---- helpers --------------------------------------------------------------------------------------------------
const q = (s) => `'${String(s).replace(/'/g, `'\\''`)}'`;
const fresh = async (dir) => {
  await fsp.rm(dir, { recursive: true, force: true });
  await fsp.mkdir(path.dirname(dir), { recursive: true });
  return dir;
};
/** `sync` first so write-back of the previous step does not land on this one's clock. */
const measured = async (fn) => {
  await sh('sync');
  return fn();
};

/** 4 blobs uploaded in parallel with curl: POST an upload session, PUT the file to <location>&digest=. */
function curlUploadScript(url, repo, layers) {
  const one = (l) =>
    `( loc=$(curl -sS -f -X POST -H 'Content-Length: 0' -D - -o /dev/null ${q(`${url}/v2/${repo}/blobs/uploads/`)} | tr -d '\\r' | sed -n 's/^[Ll]ocation: //p'); ` +
    `case "$loc" in http*) ;; *) loc=${q(url)}"$loc";; esac; ` +
    `case "$loc" in *\\?*) sep='&';; *) sep='?';; esac; ` +
    `curl -sS -f -o /dev/null -X PUT -H 'Expect:' -H 'Content-Type: application/octet-stream' -T ${q(blobPath(store, l.digest))} "$loc$sep"digest=${l.digest} ) &`;
  return `set -e\n${layers.map(one).join('\n')}\nfor j in $(jobs -p); do wait $j || exit 1; done\n`;
}

/** 4 blobs downloaded in parallel with curl to files. */
function curlDownloadScript(url, repo, layers, dir) {
  const one = (l) => `curl -sS -f -o ${q(path.join(dir, l.digest.split(':')[1]))} ${q(`${url}/v2/${repo}/blobs/${l.digest}`)} &`;
  return `set -e\nmkdir -p ${q(dir)}\n${layers.map(one).join('\n')}\nfor j in $(jobs -p); do wait $j || exit 1; done\n`;
}

async function curlUploadCheck(url, repo, layers) {
  for (const l of layers) {
    const r = await fetch(`${url}/v2/${repo}/blobs/${l.digest}`, { method: 'HEAD' });
    if (r.status !== 200) throw new Error(`curl upload of ${l.digest} to ${repo} did not land (HEAD ${r.status})`);
  }
}

// ---- rounds ---------------------------------------------------------------------------------------------------
const rows = [];
try {
  for (let i = 0; i < runs; i++) {
    const reg = await startRegistry();
    const t = `r${i}-${Date.now().toString(36)}`;
    const repos = {
      modctl: `bench/modctl-${t}`,
      skopeo: `bench/skopeo-${t}`,
      curl: `bench/curl-${t}`,
      outputRemote: `bench/output-remote-${t}`,
      pushAdjacent: `bench/push-adjacent-${t}`,
    };
    const remote = (repo) => `${reg.host}/${repo}:v1`;
    const row = {};
    try {
      log(`round ${i + 1}/${runs} registry ${reg.host}`);
      // push: modctl / skopeo / curl, order rotated per round
      const pushers = {
        modctl: async () => {
          const r = await measured(() => timed(node, modctl('--storage-dir', store, 'push', '--plain-http', '--from', LOCAL_REF, remote(repos.modctl))));
          row.push = r.wall;
          row.pushRssMB = r.rssMB;
        },
        skopeo: async () => {
          const r = await measured(() => timed('skopeo', ['copy', '-q', '--dest-tls-verify=false', `oci:${store}:${LOCAL_REF}`, `docker://${remote(repos.skopeo)}`]));
          row.skopeoPush = r.wall;
          row.skopeoPushRssMB = r.rssMB;
        },
        curl: async () => {
          const r = await measured(() => sh(curlUploadScript(reg.url, repos.curl, bigLayers)));
          await curlUploadCheck(reg.url, repos.curl, bigLayers);
          row.curlPush = r.wall;
        },
      };
      const order = ['modctl', 'skopeo', 'curl'];
      const rotated = [...order.slice(i % 3), ...order.slice(0, i % 3)];
      for (const k of rotated) await pushers[k]();

      const re = await measured(() => timed(node, modctl('--storage-dir', store, 'push', '--plain-http', '--from', LOCAL_REF, remote(repos.modctl))));
      row.rePush = re.wall;
      row.rePushRssMB = re.rssMB;

      // pull: everything reads the artifact modctl pushed
      const pullers = {
        modctl: async () => {
          const dir = await fresh(path.join(scratch, 'pull-store'));
          const r = await measured(() => timed(node, modctl('--storage-dir', dir, 'pull', '--plain-http', remote(repos.modctl))));
          row.pull = r.wall;
          row.pullRssMB = r.rssMB;
          await fsp.rm(dir, { recursive: true, force: true });
        },
        skopeo: async () => {
          const dir = await fresh(path.join(scratch, 'skopeo-oci'));
          const r = await measured(() => timed('skopeo', ['copy', '-q', '--src-tls-verify=false', `docker://${remote(repos.modctl)}`, `oci:${dir}:v1`]));
          row.skopeoPull = r.wall;
          row.skopeoPullRssMB = r.rssMB;
          await fsp.rm(dir, { recursive: true, force: true });
        },
        curl: async () => {
          const dir = await fresh(path.join(scratch, 'curl-dl'));
          const r = await measured(() => sh(curlDownloadScript(reg.url, repos.modctl, bigLayers, dir)));
          row.curlPull = r.wall;
          await fsp.rm(dir, { recursive: true, force: true });
        },
      };
      for (const k of rotated) await pullers[k]();

      // hooks, each next to its own baseline; the order alternates by round
      const pair = async (a, b) => {
        if (i % 2 === 0) {
          await a();
          await b();
        } else {
          await b();
          await a();
        }
      };
      if (hasExtractFromRemote) {
        await pair(
          async () => {
            const dir = await fresh(path.join(scratch, 'extract'));
            const st = await fresh(path.join(scratch, 'extract-store'));
            const r = await measured(() => timed(node, modctl('--storage-dir', st, 'pull', '--plain-http', '--extract-dir', dir, '--extract-from-remote', remote(repos.modctl))));
            row.extractFromRemote = r.wall;
            row.extractFromRemoteRssMB = r.rssMB;
            await fsp.rm(dir, { recursive: true, force: true });
            await fsp.rm(st, { recursive: true, force: true });
          },
          async () => {
            const dir = await fresh(path.join(scratch, 'curl-dl-adjacent'));
            const r = await measured(() => sh(curlDownloadScript(reg.url, repos.modctl, bigLayers, dir)));
            row.curlPullAdjacent = r.wall;
            await fsp.rm(dir, { recursive: true, force: true });
          },
        );
      }
      if (hasOutputRemote) {
        await pair(
          async () => {
            const st = await fresh(path.join(scratch, 'output-remote-store'));
            const plain = buildHelp.includes('--plain-http') ? ['--plain-http'] : [];
            const r = await measured(() =>
              timed(node, modctl('--storage-dir', st, 'build', '--output-remote', ...plain, '-t', remote(repos.outputRemote), '-f', path.join(model, 'Modelfile'), model), { env: epochEnv }),
            );
            row.outputRemote = r.wall;
            row.outputRemoteRssMB = r.rssMB;
            await fsp.rm(st, { recursive: true, force: true });
          },
          async () => {
            const r = await measured(() => timed(node, modctl('--storage-dir', store, 'push', '--plain-http', '--from', LOCAL_REF, remote(repos.pushAdjacent))));
            row.pushAdjacent = r.wall;
          },
        );
      }
    } finally {
      await reg.stop(); // also removes its data dir
    }
    row.pushOverSkopeo = row.push / row.skopeoPush;
    row.pullOverSkopeo = row.pull / row.skopeoPull;
    row.pushOverCurl = row.push / row.curlPush;
    row.pullOverCurl = row.pull / row.curlPull;
    if (row.extractFromRemote !== undefined) {
      row.extractOverCurl = row.extractFromRemote / row.curlPullAdjacent;
      row.extractOverFirstCurl = row.extractFromRemote / row.curlPull;
    }
    if (row.outputRemote !== undefined) {
      row.outputRemoteOverPush = row.outputRemote / row.pushAdjacent;
      row.outputRemoteOverFirstPush = row.outputRemote / row.push;
    }
    rows.push(row);
    log(JSON.stringify(Object.fromEntries(Object.entries(row).map(([k, v]) => [k, round(v)]))));
  }
} finally {
  await fsp.rm(scratch, { recursive: true, force: true });
}

// ---- report ---------------------------------------------------------------------------------------------------
const med = (k) => (rows.some((r) => r[k] !== undefined) ? round(median(rows.map((r) => r[k]).filter((v) => v !== undefined))) : undefined);
const peak = (k) => round(Math.max(...rows.map((r) => r[k] ?? 0)), 1);
const m = {
  pushSeconds: med('push'),
  skopeoPushSeconds: med('skopeoPush'),
  curlPushSeconds: med('curlPush'),
  rePushSeconds: med('rePush'),
  pullSeconds: med('pull'),
  skopeoPullSeconds: med('skopeoPull'),
  curlPullSeconds: med('curlPull'),
  pushOverSkopeo: med('pushOverSkopeo'),
  pullOverSkopeo: med('pullOverSkopeo'),
  pushOverCurl: med('pushOverCurl'),
  pullOverCurl: med('pullOverCurl'),
  peakRssMB: { push: peak('pushRssMB'), rePush: peak('rePushRssMB'), pull: peak('pullRssMB'), skopeoPush: peak('skopeoPushRssMB'), skopeoPull: peak('skopeoPullRssMB') },
  extractFromRemote: hasExtractFromRemote
    ? {
        seconds: med('extractFromRemote'),
        curlPullAdjacentSeconds: med('curlPullAdjacent'),
        overCurlPull: med('extractOverCurl'),
        overFirstCurlPull: med('extractOverFirstCurl'),
        peakRssMB: peak('extractFromRemoteRssMB'),
      }
    : { skipped: SKIPPED },
  outputRemote: hasOutputRemote
    ? {
        seconds: med('outputRemote'),
        pushAdjacentSeconds: med('pushAdjacent'),
        overPush: med('outputRemoteOverPush'),
        overFirstPush: med('outputRemoteOverFirstPush'),
        peakRssMB: peak('outputRemoteRssMB'),
      }
    : { skipped: SKIPPED },
};
const peakModctl = Math.max(m.peakRssMB.push, m.peakRssMB.pull, m.peakRssMB.rePush, hasExtractFromRemote ? m.extractFromRemote.peakRssMB : 0, hasOutputRemote ? m.outputRemote.peakRssMB : 0);
const out = {
  benchmark: 'registry',
  bytes: totalBytes,
  layers: manifest.layers.length,
  registry: 'docker-registry 2.8 (filesystem storage) on 127.0.0.1, fresh data dir per round',
  runs: rows.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, round(v)]))),
  median: m,
  targets: {
    pushOverSkopeo: { target: '<= 0.9', met: m.pushOverSkopeo <= 0.9 },
    pullOverSkopeo: { target: '<= 0.6', met: m.pullOverSkopeo <= 0.6 },
    peakRssMB: { target: '<= 150', value: peakModctl, met: peakModctl <= 150 },
    rePushSeconds: { target: '< 1', met: m.rePushSeconds < 1 },
    extractFromRemoteOverCurlPull: hasExtractFromRemote ? { target: '<= 1.2', met: m.extractFromRemote.overCurlPull <= 1.2 } : { skipped: SKIPPED },
    outputRemoteOverPush: hasOutputRemote ? { target: '<= 1.1', met: m.outputRemote.overPush <= 1.1 } : { skipped: SKIPPED },
  },
  baselines: {
    skopeoPush: `skopeo copy --dest-tls-verify=false oci:<store>:${LOCAL_REF} docker://<host>/<fresh repo>:v1`,
    skopeoPull: 'skopeo copy --src-tls-verify=false docker://<host>/<repo>:v1 oci:<fresh dir>:v1',
    curlPush: `POST /v2/<fresh repo>/blobs/uploads/ then PUT -T <blob> <location>&digest=…, the ${FILES} big blobs in parallel`,
    curlPull: `GET /v2/<repo>/blobs/<digest> -o <file>, the ${FILES} big blobs in parallel`,
    adjacent: 'extract-from-remote is compared with a curl download, and build --output-remote with a plain push to a fresh repository, each timed right next to it (order alternating by round)',
    order: 'modctl, skopeo, curl rotated by one each round; `sync` before every timed step',
  },
};
console.log(JSON.stringify(out, null, 2));
