/**
 * Progress events emitted by core operations. The CLI turns them into an ora line on a TTY or periodic plain lines
 * otherwise; core code never prints.
 */
export type ProgressEvent =
  /** A unit of work (a blob, a file) begins; `total` in bytes when known. */
  | { type: 'start'; id: string; label: string; total?: number }
  /** `bytes` more bytes of unit `id` were processed (a delta, not a running total). */
  | { type: 'advance'; id: string; bytes: number }
  /** Unit finished; `skipped` when nothing had to be transferred (already present). */
  | { type: 'done'; id: string; skipped?: boolean };

export type ProgressFn = (ev: ProgressEvent) => void;

export const noProgress: ProgressFn = () => {};
