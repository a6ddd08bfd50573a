import { readAllCapped } from '../util/stream.js';
import os from 'node:os';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { parseModelfile, renderModelfile, type ModelfileSpec } from '../modelfile/index.js';
import { LocalStore } from '../content/local-store.js';
import { annotationKeys, artifactType, configMediaType, MT_OCI_MANIFEST, type IdFamily } from '../oci/media-types.js';
import { formatReference, parseReference, type Reference } from '../oci/reference.js';
import { digestOf } from '../oci/digest.js';
import type { Descriptor, Manifest } from '../oci/types.js';
import { ModctlError, throwIfAborted } from '../errors.js';
import type { ProgressFn } from '../util/progress.js';
import { mapLimit } from '../util/limit.js';
import { resolveSources, type SourceEntry } from './sources.js';
import { layerDescriptor, writeTarLayer, type LayerOptions } from './layer.js';
import { HashCopyPool } from './hash-pool.js';
import { DigestCache } from './digest-cache.js';
import { assertValidConfig, buildConfig, serializeConfig } from './config.js';
import { detectGitSource } from './git.js';

/** Options shared by the local build and `build --output-remote`. */
export interface BuildCommonOptions {
  contextDir: string;
  /** Modelfile text and the name to show in diagnostics. */
  modelfile: { text: string; file: string };
  target: string;
  raw?: boolean;
  family?: IdFamily;
  noCreationTime?: boolean;
  /** SOURCE_DATE_EPOCH in seconds: pins createdAt and tar mtimes. */
  sourceDateEpoch?: number;
  sourceURL?: string;
  sourceRevision?: string;
  reasoning?: boolean;
  /** Leave out the org.cncf.modctl.modelfile manifest annotation. */
  noModelfileAnnotation?: boolean;
  concurrency?: number;
  signal?: AbortSignal;
  onProgress?: ProgressFn;
  onWarning?: (msg: string) => void;
}

export interface BuildOptions extends BuildCommonOptions {
  store: LocalStore;
}

export interface BuiltLayer {
  path: string;
  mediaType: string;
  digest: string;
  size: number;
  /** Content was already in the store (digest cache hit or identical blob). */
  reused: boolean;
}

export interface BuildResult {
  reference: string;
  digest: string;
  size: number;
  mediaType: string;
  artifactType: string;
  config: { digest: string; size: number };
  layers: BuiltLayer[];
  warnings: string[];
}

export function parseSourceDateEpoch(v: string | undefined): number | undefined {
  if (v === undefined || v === '') return undefined;
  if (!/^\d+$/.test(v)) {
    throw new ModctlError('E_ENV', `SOURCE_DATE_EPOCH must be a non-negative integer number of seconds, got ${JSON.stringify(v)}`);
  }
  return Number(v);
}

/** Everything a build needs before any layer is produced (shared by the local and the --output-remote build). */
export interface PreparedBuild {
  ref: Reference;
  /** Canonical reference string of the target. */
  name: string;
  family: IdFamily;
  spec: ModelfileSpec;
  /** Real path of the build context. */
  ctxReal: string;
  entries: SourceEntry[];
  layerOpts: LayerOptions;
  concurrency: number;
  warnings: string[];
  warn: (msg: string) => void;
}

/** Parse the target and the Modelfile, resolve the sources against the context. */
export async function prepareBuild(opts: BuildCommonOptions): Promise<PreparedBuild> {
  const warnings: string[] = [];
  const warn = (m: string) => {
    warnings.push(m);
    opts.onWarning?.(m);
  };
  const family = opts.family ?? 'cncf';
  const ref = parseReference(opts.target);
  if (ref.digest) throw new ModctlError('E_REFERENCE', `build target ${opts.target} must be a tag, not a digest`, { exitCode: 2 });
  const name = formatReference(ref);

  const spec: ModelfileSpec = parseModelfile(opts.modelfile.text, { file: opts.modelfile.file });
  const ctxReal = await fsp.realpath(opts.contextDir).catch(() => {
    throw new ModctlError('E_CONTEXT', `build context ${opts.contextDir} does not exist`, { exitCode: 2 });
  });
  const { entries, warnings: srcWarnings } = await resolveSources(ctxReal, spec.files);
  srcWarnings.forEach(warn);
  if (entries.length === 0) {
    throw new ModctlError('E_NO_FILES', 'the Modelfile selects no files, so there is nothing to build', {
      hint: 'add MODEL, CONFIG, CODE, DOC or DATASET lines that match files in the build context',
    });
  }
  throwIfAborted(opts.signal);
  const layerOpts: LayerOptions = { family, raw: opts.raw ?? true, sourceDateEpoch: opts.sourceDateEpoch };
  return { ref, name, family, spec, ctxReal, entries, layerOpts, concurrency: Math.max(1, opts.concurrency ?? 5), warnings, warn };
}

/** The config and manifest for built layers (config validated against the schema), serialised. */
export async function assembleArtifact(
  prep: PreparedBuild,
  opts: BuildCommonOptions,
  layers: Descriptor[],
): Promise<{ configBytes: Buffer; manifest: Manifest; configDescriptor: Descriptor }> {
  let gitSrc: { sourceURL?: string; revision?: string } = {};
  // Precedence: command-line flag, then the Modelfile (SOURCEURL/REVISION), then git detection of the context.
  const sourceURL = opts.sourceURL ?? prep.spec.sourceURL;
  const revision = opts.sourceRevision ?? prep.spec.revision;
  if (sourceURL === undefined && revision === undefined) gitSrc = await detectGitSource(prep.ctxReal);

  let createdAt: string | undefined;
  if (!opts.noCreationTime) createdAt = createdAtFor(opts.sourceDateEpoch);
  const config = buildConfig({
    spec: prep.spec,
    diffIds: layers.map((l) => l.digest),
    createdAt,
    sourceURL: sourceURL ?? gitSrc.sourceURL,
    revision: revision ?? gitSrc.revision,
    reasoning: opts.reasoning,
  });
  assertValidConfig(config);
  const configBytes = serializeConfig(config);
  const configDescriptor: Descriptor = { mediaType: configMediaType(prep.family), digest: digestOf(configBytes), size: configBytes.length };
  const manifest: Manifest = {
    schemaVersion: 2,
    mediaType: MT_OCI_MANIFEST,
    artifactType: artifactType(prep.family),
    config: configDescriptor,
    layers,
  };
  if (!opts.noModelfileAnnotation) {
    manifest.annotations = { [annotationKeys(prep.family).modelfile]: renderModelfile(prep.spec) };
  }
  return { configBytes, manifest, configDescriptor };
}

/** `descriptor.createdAt`: SOURCE_DATE_EPOCH (seconds precision) when given, else now. */
export function createdAtFor(sourceDateEpoch: number | undefined): string {
  return sourceDateEpoch !== undefined ? new Date(sourceDateEpoch * 1000).toISOString().replace(/\.000Z$/, 'Z') : new Date().toISOString();
}

export function builtLayers(family: IdFamily, built: Array<{ desc: Descriptor; reused: boolean }>): BuiltLayer[] {
  return built.map((b) => ({
    path: b.desc.annotations![annotationKeys(family).filepath],
    mediaType: b.desc.mediaType,
    digest: b.desc.digest,
    size: b.desc.size,
    reused: b.reused,
  }));
}

export async function build(opts: BuildOptions): Promise<BuildResult> {
  const { store, signal } = opts;
  const progress = opts.onProgress ?? (() => {});
  const prep = await prepareBuild(opts);
  const { entries, layerOpts, ctxReal, concurrency, family, warn } = prep;
  const cache = await DigestCache.load(store.root);
  let pool: HashCopyPool | undefined;

  const buildOne = async (e: SourceEntry): Promise<{ desc: Descriptor; reused: boolean }> => {
    throwIfAborted(signal);
    const id = `layer:${e.relPath}`;
    progress({ type: 'start', id, label: e.relPath, total: e.isDir ? undefined : e.stat.size });
    const raw = layerOpts.raw && !e.isDir;
    const key = DigestCache.layerKey(e, raw, layerOpts.sourceDateEpoch);
    const hit = cache.get(key);
    if (hit && (await store.hasBlob(hit.digest, hit.size))) {
      progress({ type: 'done', id, skipped: true });
      return { desc: layerDescriptor(e, hit, layerOpts), reused: true };
    }
    let blob: { digest: string; size: number };
    let reused = false;
    if (raw) {
      pool ??= new HashCopyPool(Math.min(concurrency, Math.max(1, os.availableParallelism())));
      const tmp = store.tempPath('layer');
      try {
        blob = await pool.copy(e.absPath, tmp, (n) => progress({ type: 'advance', id, bytes: n }), signal);
        if (blob.size !== e.stat.size) {
          throw new ModctlError('E_FILE_CHANGED', `${e.relPath} changed size while it was being read (${e.stat.size} → ${blob.size} bytes)`, {
            hint: 'do not modify the model files during a build',
          });
        }
        if (await store.hasBlob(blob.digest, blob.size)) {
          reused = true;
          await fsp.rm(tmp, { force: true });
        } else await store.commitTemp(tmp, blob.digest);
      } catch (err) {
        await fsp.rm(tmp, { force: true });
        throw err;
      }
    } else {
      blob = await writeTarLayer(store, e, ctxReal, layerOpts, (n) => progress({ type: 'advance', id, bytes: n }), signal);
    }
    cache.set(key, blob);
    progress({ type: 'done', id });
    return { desc: layerDescriptor(e, blob, layerOpts), reused };
  };

  let built: Array<{ desc: Descriptor; reused: boolean }>;
  try {
    built = await mapLimit(entries, concurrency, buildOne);
  } finally {
    await pool?.close();
  }
  await cache.save().catch((e) => warn(`could not save the build digest cache: ${(e as Error).message}`));

  const { configBytes, manifest } = await assembleArtifact(prep, opts, built.map((b) => b.desc));
  const configBlob = await store.putBytes(configBytes);
  const manifestBytes = Buffer.from(JSON.stringify(manifest));
  const m = await store.putBytes(manifestBytes);
  await store.tag(prep.name, { mediaType: MT_OCI_MANIFEST, digest: m.digest, size: m.size, artifactType: manifest.artifactType });

  return {
    reference: prep.name,
    digest: m.digest,
    size: m.size + configBlob.size + built.reduce((a, b) => a + b.desc.size, 0),
    mediaType: MT_OCI_MANIFEST,
    artifactType: manifest.artifactType!,
    config: configBlob,
    layers: builtLayers(family, built),
    warnings: prep.warnings,
  };
}

export async function readModelfile(file: string, cwd: string, stdin?: NodeJS.ReadableStream): Promise<{ text: string; file: string }> {
  if (file === '-') {
    if (!stdin) throw new ModctlError('E_USAGE', 'no standard input to read the Modelfile from', { exitCode: 2 });
const bytes = await readAllCapped(stdin, 1 << 20, () => new ModctlError('E_MODELFILE', 'the Modelfile on standard input is over 1 MiB'));
    return { text: bytes.toString('utf8'), file: '<stdin>' };
  }
  const abs = path.resolve(cwd, file);
  try {
    const st = await fsp.stat(abs);
    if (st.size > 1 << 20) throw new ModctlError('E_MODELFILE', `${file} is over 1 MiB; is it really a Modelfile?`);
    return { text: await fsp.readFile(abs, 'utf8'), file };
  } catch (e) {
    if (e instanceof ModctlError) throw e;
    throw new ModctlError('E_MODELFILE_MISSING', `cannot read Modelfile ${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`, {
      hint: 'pass the Modelfile with -f <path> (or -f - for standard input); it is resolved against the current directory',
      exitCode: 2,
    });
  }
}
