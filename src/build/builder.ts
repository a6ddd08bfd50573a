import { readAllCapped } from '../util/stream.js';
import { inferWeightsMetadata, type WeightsMetadata } from '../weights/infer.js';
import { dockerConfigFor } from '../formats/docker.js';
import os from 'node:os';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { parseModelfile, renderModelfile, type ModelfileSpec } from '../modelfile/index.js';
import { LocalStore } from '../content/local-store.js';
import { annotationKeys, artifactType, configMediaType, layerFilepath, MT_OCI_MANIFEST, type IdFamily } from '../oci/media-types.js';
import { formatReference, parseReference, type Reference } from '../oci/reference.js';
import { digestOf } from '../oci/digest.js';
import type { Descriptor, Manifest } from '../oci/types.js';
import { ModctlError, throwIfAborted } from '../errors.js';
import type { ProgressFn } from '../util/progress.js';
import { mapLimit } from '../util/limit.js';
import { entrySize, resolveSources, type SourceEntry } from './sources.js';
import { layerDescriptor, writeTarLayer, type LayerOptions } from './layer.js';
import { HashCopyPool } from './hash-pool.js';
import { DigestCache } from './digest-cache.js';
import { assertValidConfig, buildConfig, prepareConfigValidatorSoon, serializeConfig } from './config.js';
import { detectGitSource } from './git.js';

/** Options shared by the local build and `build --output-remote`. */
export interface BuildCommonOptions {
  contextDir: string;
  /** Modelfile text and the name to show in diagnostics. */
  modelfile: { text: string; file: string };
  target: string;
  raw?: boolean;
  family?: IdFamily;
  /** Output dialect: ModelPack (default, `cncf` ids), ModelPack with legacy `cnai` ids, or Docker model-runner. */
  format?: BuildFormat;
  /** Do not read weight headers to fill empty config fields. */
  noInfer?: boolean;
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
export type BuildFormat = 'modelpack' | 'modelpack-legacy' | 'docker';
export const BUILD_FORMATS: readonly BuildFormat[] = ['modelpack', 'modelpack-legacy', 'docker'];

export interface PreparedBuild {
  format: BuildFormat;
  /** What the weight headers said (undefined with --no-infer or without GGUF/safetensors weights). */
  weights?: WeightsMetadata;
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
  /** Git detection of the context, started here so that it runs beside the layers (see assembleArtifact). */
  gitSource: Promise<{ sourceURL?: string; revision?: string }>;
}

/** Parse the target and the Modelfile, resolve the sources against the context. */
export async function prepareBuild(opts: BuildCommonOptions): Promise<PreparedBuild> {
  const warnings: string[] = [];
  const warn = (m: string) => {
    warnings.push(m);
    opts.onWarning?.(m);
  };
  const format = opts.format ?? (opts.family === 'cnai' ? 'modelpack-legacy' : 'modelpack');
  const family: IdFamily = opts.family ?? (format === 'modelpack-legacy' ? 'cnai' : 'cncf');
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
  const weights = opts.noInfer ? undefined : await inferFromWeights(ctxReal, entries, spec, warn);
  const layerOpts: LayerOptions = { family, raw: opts.raw ?? true, sourceDateEpoch: opts.sourceDateEpoch };
  if (format === 'docker') {
    const dirs = entries.filter((e) => e.isDir).map((e) => e.relPath);
    if (dirs.length || opts.raw === false) {
      throw new ModctlError('E_USAGE', `--format docker packs one raw layer per file${dirs.length ? `; ${dirs.join(', ')} ${dirs.length === 1 ? 'is a directory' : 'are directories'}` : ''}`, {
        exitCode: 2,
        hint: 'select the files with a ** glob (e.g. MODEL dir/**) and leave --raw at its default',
      });
    }
    const ggufModel = weights?.format === 'gguf' || entries.some((e) => e.kind === 'model' && e.relPath.toLowerCase().endsWith('.gguf'));
    layerOpts.docker = { ggufModel };
  }
  // Precedence: command-line flag, then the Modelfile (SOURCEURL/REVISION), then git detection of the context.
  const gitSource =
    format !== 'docker' && (opts.sourceURL ?? spec.sourceURL) === undefined && (opts.sourceRevision ?? spec.revision) === undefined
      ? detectGitSource(ctxReal)
      : Promise.resolve({});
  return { ref, name, family, format, weights, spec, ctxReal, entries, layerOpts, concurrency: Math.max(1, opts.concurrency ?? 5), warnings, warn, gitSource };
}

/** The config and manifest for built layers (config validated against the schema), serialised. */
export async function assembleArtifact(
  prep: PreparedBuild,
  opts: BuildCommonOptions,
  layers: Descriptor[],
): Promise<{ configBytes: Buffer; manifest: Manifest; configDescriptor: Descriptor }> {
  const sourceURL = opts.sourceURL ?? prep.spec.sourceURL;
  const revision = opts.sourceRevision ?? prep.spec.revision;
  const gitSrc = await prep.gitSource;

  let createdAt: string | undefined;
  if (!opts.noCreationTime) createdAt = createdAtFor(opts.sourceDateEpoch);
  if (prep.format === 'docker') return assembleDocker(prep, layers, createdAt);
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
  warnLargeManifest(manifest, prep.warn);
  return { configBytes, manifest, configDescriptor };
}

/** Registries cap manifests at 4 MiB (distribution answers 400 above it); say so at build time, not at push time. */
function warnLargeManifest(manifest: Manifest, warn: (m: string) => void): void {
  const size = Buffer.byteLength(JSON.stringify(manifest));
  if (size > 4 * 1024 * 1024) {
    warn(`the manifest is ${(size / 1024 / 1024).toFixed(1)} MiB with ${manifest.layers.length} layers; registries refuse manifests over 4 MiB — pack directories of small files as one tar layer each (e.g. "DOC docs" instead of "DOC docs/**")`);
  }
}

/** Docker model-runner artifact: config v0.1 (GGUF) or v0.2 (layer per file) filled from the weight headers. */
function assembleDocker(prep: PreparedBuild, layers: Descriptor[], created: string | undefined) {
  const meta: WeightsMetadata = { ...(prep.weights ?? { files: [], warnings: [] }) };
  // Modelfile values win over the headers for the fields both know
  if (prep.spec.format) meta.format = prep.spec.format as WeightsMetadata['format'];
  if (prep.spec.quantization) meta.quantization = prep.spec.quantization;
  if (prep.spec.paramSize && meta.paramCount === undefined) meta.paramSize = prep.spec.paramSize;
  const { mediaType, body } = dockerConfigFor({
    files: layers.map((l) => ({ path: layerFilepath(l.annotations) ?? '', size: l.size, mediaType: l.mediaType })),
    meta,
    created,
    diffIds: layers.map((l) => l.digest),
  });
  const configBytes = Buffer.from(JSON.stringify(body));
  const configDescriptor: Descriptor = { mediaType, digest: digestOf(configBytes), size: configBytes.length };
  const manifest: Manifest = { schemaVersion: 2, mediaType: MT_OCI_MANIFEST, config: configDescriptor, layers };
  warnLargeManifest(manifest, prep.warn);
  return { configBytes, manifest, configDescriptor };
}

const WEIGHT_EXT = /\.(gguf|safetensors)$/i;

/**
 * Read the GGUF/safetensors headers of the MODEL files and fill the config fields the Modelfile leaves empty; warn
 * where the Modelfile says something else than the weights.
 */
async function inferFromWeights(ctxReal: string, entries: SourceEntry[], spec: ModelfileSpec, warn: (m: string) => void): Promise<WeightsMetadata | undefined> {
  const files = entries.filter((e) => !e.isDir && e.kind === 'model' && WEIGHT_EXT.test(e.relPath)).map((e) => e.absPath);
  if (files.length === 0) return undefined;
  let configJson: object | undefined;
  const cfg = entries.find((e) => !e.isDir && e.relPath === 'config.json');
  if (cfg && cfg.stat.size < 16 << 20) {
    try {
      configJson = JSON.parse(await fsp.readFile(cfg.absPath, 'utf8'));
    } catch {
      // not JSON: nothing to learn from it
    }
  }
  const meta = await inferWeightsMetadata(files, { configJson });
  meta.warnings.forEach((w) => warn(w.replace(ctxReal + path.sep, '')));
  const fill = (key: 'format' | 'paramSize' | 'quantization' | 'precision' | 'family', value: string | undefined, label: string) => {
    if (!value) return;
    const have = spec[key];
    if (!have) (spec as unknown as Record<string, string>)[key] = value;
    else if (!sameValue(key, have, value)) warn(`the Modelfile says ${label} ${have}, but the weights say ${value}; keeping ${have}`);
  };
  fill('format', meta.format, 'FORMAT');
  fill('paramSize', meta.paramSize, 'PARAMSIZE');
  fill('quantization', meta.quantization, 'QUANTIZATION');
  fill('precision', meta.precision, 'PRECISION');
  fill('family', meta.family, 'FAMILY');
  if (!spec.arch && (meta.format === 'gguf' || (configJson && 'transformers_version' in configJson))) spec.arch = 'transformer';
  return meta;
}

/** Loose comparison: case-insensitive; parameter sizes equal within 10% (`8B` vs `8.03B`). */
function sameValue(key: string, a: string, b: string): boolean {
  if (a.toLowerCase() === b.toLowerCase()) return true;
  if (key === 'paramSize') {
    const n = (s: string) => {
      const m = /^([\d.]+)\s*([kmbtq]?)$/i.exec(s.trim());
      if (!m) return NaN;
      const scale = { '': 1, k: 1e3, m: 1e6, b: 1e9, t: 1e12, q: 1e15 }[m[2].toLowerCase() as 'k'] ?? 1;
      return Number(m[1]) * scale;
    };
    const x = n(a);
    const y = n(b);
    return Number.isFinite(x) && Number.isFinite(y) && Math.abs(x - y) <= 0.1 * Math.max(x, y);
  }
  if (key === 'precision') return a.toLowerCase().split(',').sort().join() === b.toLowerCase().split(',').sort().join();
  return false;
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
  // the schema compiles while the workers copy, not after the last file
  const cancelWarm = prep.format === 'docker' ? () => {} : prepareConfigValidatorSoon();
  try {
    built = await mapLimit(entries, concurrency, buildOne, { size: entrySize });
  } finally {
    cancelWarm();
    await pool?.close();
  }
  await cache.save().catch((e) => warn(`could not save the build digest cache: ${(e as Error).message}`));

  const { configBytes, manifest } = await assembleArtifact(prep, opts, built.map((b) => b.desc));
  const configBlob = await store.putBytes(configBytes);
  const manifestBytes = Buffer.from(JSON.stringify(manifest));
  const m = await store.putBytes(manifestBytes);
  const tagDesc: Descriptor = { mediaType: MT_OCI_MANIFEST, digest: m.digest, size: m.size };
  if (manifest.artifactType) tagDesc.artifactType = manifest.artifactType;
  await store.tag(prep.name, tagDesc);

  return {
    reference: prep.name,
    digest: m.digest,
    size: m.size + configBlob.size + built.reduce((a, b) => a + b.desc.size, 0),
    mediaType: MT_OCI_MANIFEST,
    artifactType: manifest.artifactType ?? manifest.config.mediaType,
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
