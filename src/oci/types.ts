import { z } from 'zod';

/** OCI descriptor (image-spec v1.1.1 descriptor.md). Unknown fields are kept. */
export const DescriptorSchema = z.looseObject({
  mediaType: z.string(),
  digest: z.string(),
  size: z.number().int().nonnegative(),
  urls: z.array(z.string()).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
  artifactType: z.string().optional(),
  platform: z.looseObject({ architecture: z.string(), os: z.string() }).optional(),
});
export type Descriptor = z.infer<typeof DescriptorSchema>;

export const ManifestSchema = z.looseObject({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  artifactType: z.string().optional(),
  config: DescriptorSchema,
  layers: z.array(DescriptorSchema),
  subject: DescriptorSchema.optional(),
  annotations: z.record(z.string(), z.string()).optional(),
});
export type Manifest = z.infer<typeof ManifestSchema>;

export const IndexSchema = z.looseObject({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  artifactType: z.string().optional(),
  manifests: z.array(DescriptorSchema),
  annotations: z.record(z.string(), z.string()).optional(),
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
