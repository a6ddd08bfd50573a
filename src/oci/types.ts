import * as z from 'zod/mini';

// zod/mini: the tree-shakable build of zod 4 (the full build's chainable API cost ~20 ms of every start-up, for the
// three schemas here and four in the Modelfile validator). English messages are loaded once, in src/util/zod.ts.
import '../util/zod.js';

/** OCI descriptor (image-spec v1.1.1 descriptor.md). Unknown fields are kept. */
export const DescriptorSchema = z.looseObject({
  mediaType: z.string(),
  digest: z.string(),
  size: z.number().check(z.int(), z.nonnegative()),
  urls: z.optional(z.array(z.string())),
  annotations: z.optional(z.record(z.string(), z.string())),
  artifactType: z.optional(z.string()),
  platform: z.optional(z.looseObject({ architecture: z.string(), os: z.string() })),
});
export type Descriptor = z.infer<typeof DescriptorSchema>;

export const ManifestSchema = z.looseObject({
  schemaVersion: z.literal(2),
  mediaType: z.optional(z.string()),
  artifactType: z.optional(z.string()),
  config: DescriptorSchema,
  layers: z.array(DescriptorSchema),
  subject: z.optional(DescriptorSchema),
  annotations: z.optional(z.record(z.string(), z.string())),
});
export type Manifest = z.infer<typeof ManifestSchema>;

export const IndexSchema = z.looseObject({
  schemaVersion: z.literal(2),
  mediaType: z.optional(z.string()),
  artifactType: z.optional(z.string()),
  manifests: z.array(DescriptorSchema),
  annotations: z.optional(z.record(z.string(), z.string())),
});
export type Index = z.infer<typeof IndexSchema>;

/** ModelPack config blob (application/vnd.cncf.model.config.v1+json). */
export interface ModelConfig {
  descriptor: {
    createdAt?: string;
    authors?: string[];
    family?: string;
    name?: string;
    docURL?: string;
    sourceURL?: string;
    datasetsURL?: string[];
    version?: string;
    revision?: string;
    vendor?: string;
    licenses?: string[];
    title?: string;
    description?: string;
  };
  modelfs: { type: 'layers'; diffIds: string[] };
  config: {
    architecture?: string;
    format?: string;
    paramSize?: string;
    precision?: string;
    quantization?: string;
    capabilities?: {
      inputTypes?: string[];
      outputTypes?: string[];
      knowledgeCutoff?: string;
      reasoning?: boolean;
      toolUsage?: boolean;
      reward?: boolean;
      languages?: string[];
    };
  };
}

/** File metadata carried in org.cncf.model.file.metadata+json (modelpack.md §3.1). */
export interface FileMetadata {
  name: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: string;
  typeflag: number;
}

/** Max size of a manifest or config we read into memory (registries cap manifests at 4 MiB). */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
