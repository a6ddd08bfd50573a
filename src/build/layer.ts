import { createReadStream, createWriteStream, promises as fsp, type Stats } from 'node:fs';
import path from 'node:path';
import { pipeline as pipelineP } from 'node:stream/promises';
import { PassThrough, pipeline, type Readable } from 'node:stream';
import tar from 'tar-stream';
import { HashingStream } from '../oci/digest.js';
import { ANN_TITLE, annotationKeys, layerMediaType, type IdFamily, type LayerKind } from '../oci/media-types.js';
import type { Descriptor, FileMetadata } from '../oci/types.js';
import type { LocalStore } from '../content/local-store.js';
import { dockerLayerMediaType } from '../formats/docker.js';
import type { FileKind } from '../modelfile/index.js';
import type { SourceEntry } from './sources.js';
import { cmpBytes } from './sources.js';
import { throwIfAborted } from '../errors.js';

const HWM = 1 << 20;

export function layerKindOf(kind: FileKind): LayerKind {
  switch (kind) {
    case 'config':
      return 'weight.config';
    case 'model':
      return 'weight';
    default:
      return kind;
  }
}

/** Permission bits normalised the way the spec's reproducibility guidance asks: 0755 if any x bit, else 0644. */
export function normalMode(mode: number, isDir: boolean): number {
  if (isDir) return 0o755;
  return mode & 0o111 ? 0o755 : 0o644;
}

export function rfc3339Seconds(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export interface LayerOptions {
  family: IdFamily;
  /** Docker model-runner layers (`--format docker`): Docker media types, ModelPack annotations. */
  docker?: { ggufModel: boolean };
  raw: boolean;
  /** Fixed mtime (SOURCE_DATE_EPOCH), seconds; otherwise the file's own mtime is used. */
  sourceDateEpoch?: number;
}

export function fileMetadata(entry: SourceEntry, opts: LayerOptions): FileMetadata {
  const mtime = opts.sourceDateEpoch !== undefined ? new Date(opts.sourceDateEpoch * 1000) : new Date(Math.floor(entry.stat.mtimeMs / 1000) * 1000);
  return {
    name: path.posix.basename(entry.relPath),
    mode: entry.isDir ? 0o755 : entry.stat.mode & 0o777,
    uid: 0,
    gid: 0,
    size: entry.isDir ? 0 : entry.stat.size,
    mtime: rfc3339Seconds(mtime),
    typeflag: entry.isDir ? 5 : 0,
  };
}

export function layerDescriptor(entry: SourceEntry, blob: { digest: string; size: number }, opts: LayerOptions): Descriptor {
  const keys = annotationKeys(opts.family);
  const encoding = opts.raw && !entry.isDir ? 'raw' : 'tar';
  if (opts.docker) {
    // Docker model-runner: Docker layer types, the ModelPack annotation keys and `untested: false` (peer-formats §2.3)
    return {
      mediaType: dockerLayerMediaType(entry.relPath, opts.docker.ggufModel),
      digest: blob.digest,
      size: blob.size,
      annotations: {
        [keys.filepath]: entry.relPath,
        [keys.fileMetadata]: JSON.stringify(fileMetadata(entry, opts)),
        [keys.untested]: 'false',
        [ANN_TITLE]: entry.relPath,
      },
    };
  }
  return {
    mediaType: layerMediaType(layerKindOf(entry.kind), encoding, opts.family),
    digest: blob.digest,
    size: blob.size,
    annotations: {
      [keys.filepath]: entry.relPath,
      [keys.fileMetadata]: JSON.stringify(fileMetadata(entry, opts)),
      [ANN_TITLE]: entry.relPath,
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Deterministic tar layers: one stream producer shared by the local store (writeTarLayer) and remote builds.

export interface TarItem {
  rel: string;
  abs: string;
  stat: Stats;
  isDir: boolean;
}

/** The entries of a tar layer: the file itself, or a directory tree sorted bytewise (symlinks followed inside). */
export async function collectTarItems(entry: SourceEntry, contextReal: string): Promise<TarItem[]> {
  if (!entry.isDir) return [{ rel: entry.relPath, abs: entry.absPath, stat: entry.stat, isDir: false }];
  const items: TarItem[] = [{ rel: entry.relPath, abs: entry.absPath, stat: entry.stat, isDir: true }];
  const visit = async (abs: string, rel: string, seen: Set<string>): Promise<void> => {
    const names = (await fsp.readdir(abs)).sort(cmpBytes);
    for (const name of names) {
      const a = path.join(abs, name);
      const r = `${rel}/${name}`;
      let st = await fsp.lstat(a);
      let real = a;
      if (st.isSymbolicLink()) {
        try {
          real = await fsp.realpath(a);
        } catch {
          continue;
        }
        const rr = path.relative(contextReal, real);
        if (rr.startsWith('..') || path.isAbsolute(rr)) continue;
        st = await fsp.stat(real);
      }
      if (st.isDirectory()) {
        if (seen.has(real)) continue;
        items.push({ rel: r, abs: real, stat: st, isDir: true });
        await visit(real, r, new Set([...seen, real]));
      } else if (st.isFile()) {
        items.push({ rel: r, abs: real, stat: st, isDir: false });
      }
    }
  };
  await visit(entry.absPath, entry.relPath, new Set([entry.absPath]));
  items.sort((a, b) => cmpBytes(a.rel, b.rel));
  return items;
}

function tarHeader(it: TarItem, opts: LayerOptions): tar.Header {
  const mtime = opts.sourceDateEpoch !== undefined ? new Date(opts.sourceDateEpoch * 1000) : new Date(Math.floor(it.stat.mtimeMs / 1000) * 1000);
  const header: tar.Header = {
    name: it.isDir ? `${it.rel}/` : it.rel,
    type: it.isDir ? 'directory' : 'file',
    size: it.isDir ? 0 : it.stat.size,
    mode: normalMode(it.stat.mode, it.isDir),
    mtime,
    uid: 0,
    gid: 0,
    uname: '',
    gname: '',
    linkname: '',
    devmajor: 0,
    devminor: 0,
  };
  if (!it.isDir && it.stat.size >= 8 * 1024 ** 3) header.pax = { size: String(it.stat.size) };
  return header;
}

/**
 * The deterministic tar stream of `items` (headers exactly as writeTarLayer writes them). A failure while feeding
 * destroys the stream with that error.
 */
export function packTar(items: readonly TarItem[], opts: LayerOptions, onBytes: (n: number) => void, signal?: AbortSignal): Readable {
  const pack = tar.pack();
  const feed = async () => {
    for (const it of items) {
      throwIfAborted(signal);
      const header = tarHeader(it, opts);
      if (it.isDir) {
        await new Promise<void>((res, rej) => pack.entry(header, (err) => (err ? rej(err) : res())));
        continue;
      }
      const sink = pack.entry(header);
      const src = createReadStream(it.abs, { highWaterMark: HWM });
      src.on('data', (c: string | Buffer) => onBytes(c.length));
      await new Promise<void>((res, rej) => pipeline(src, sink as unknown as NodeJS.WritableStream, (err) => (err ? rej(err) : res())));
    }
    pack.finalize();
  };
  // A plain Node stream (tar-stream's are streamx): the buffers pass through uncopied.
  const out = new PassThrough({ highWaterMark: HWM });
  pipeline(pack as unknown as NodeJS.ReadableStream, out, () => {});
  feed().catch((e) => {
    pack.destroy(e);
    out.destroy(e);
  });
  return out;
}

/**
 * Deterministic tar layer of a file or a directory tree: sorted entries, uid/gid 0, empty user/group names, mode from
 * the file (normalised), mtime from the file or SOURCE_DATE_EPOCH, PAX headers where ustar cannot hold a field.
 * Written to a temp file in the store while hashed, then renamed into place.
 */
export async function writeTarLayer(
  store: LocalStore,
  entry: SourceEntry,
  contextReal: string,
  opts: LayerOptions,
  onBytes: (n: number) => void,
  signal?: AbortSignal,
): Promise<{ digest: string; size: number }> {
  const items = await collectTarItems(entry, contextReal);
  const hasher = new HashingStream();
  const tmp = store.tempPath('tar');
  try {
    await pipelineP(packTar(items, opts, onBytes, signal), hasher, createWriteStream(tmp, { flags: 'wx', highWaterMark: HWM }), { signal });
    await store.commitTemp(tmp, hasher.digest);
    return { digest: hasher.digest, size: hasher.size };
  } catch (e) {
    await fsp.rm(tmp, { force: true });
    throw e;
  }
}
