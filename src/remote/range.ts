/** Parsing of upload `Range` and download `Content-Range` headers (registry-client.md §4, §5.2). Pure; no IO. */

export interface ByteRange {
  start: number;
  /** Inclusive. */
  end: number;
}

/**
 * Upload-status `Range: 0-<end>` (inclusive). Lenient: tolerates `bytes=`/`bytes ` prefixes and whitespace.
 * Returns undefined for anything else. Note `0-0` is ambiguous (0 or 1 byte): callers cross-check with their offset.
 */
export function parseUploadRange(value: string | string[] | undefined): ByteRange | undefined {
  const v = (Array.isArray(value) ? value[0] : value)?.trim();
  if (!v) return undefined;
  const m = /^(?:bytes[=\s]\s*)?(\d+)\s*-\s*(\d+)$/i.exec(v);
  if (!m) return undefined;
  const start = Number(m[1]);
  const end = Number(m[2]);
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || end < start) return undefined;
  return { start, end };
}

/**
 * The offset the registry holds after an upload-status or PATCH response: `end + 1`, except that `0-0` is reported
 * by 2.8 for an empty upload, so it maps to `fallback0` (our own idea of 0 or 1).
 */
export function uploadOffsetFromRange(value: string | string[] | undefined, fallback0 = 0): number | undefined {
  const r = parseUploadRange(value);
  if (!r) return undefined;
  if (r.start === 0 && r.end === 0) return fallback0;
  return r.end + 1;
}

export interface ContentRange extends ByteRange {
  /** Total size, or undefined for `*`. */
  total?: number;
}

/** `Content-Range: bytes <start>-<end>/<total|*>` of a 206 response. */
export function parseContentRange(value: string | string[] | undefined): ContentRange | undefined {
  const v = (Array.isArray(value) ? value[0] : value)?.trim();
  if (!v) return undefined;
  const m = /^bytes\s+(\d+)-(\d+)\/(\d+|\*)$/i.exec(v);
  if (!m) return undefined;
  const start = Number(m[1]);
  const end = Number(m[2]);
  if (end < start) return undefined;
  const total = m[3] === '*' ? undefined : Number(m[3]);
  if (total !== undefined && end >= total) return undefined;
  return { start, end, total };
}

/** Chunk `Content-Range` for PATCH: `<start>-<end>` inclusive, no `bytes` prefix (ACR rejects the prefixed form). */
export function formatChunkRange(start: number, length: number): string {
  return `${start}-${start + length - 1}`;
}
