import { Chalk, type ChalkInstance } from 'chalk';
import type { CliIO } from './context.js';

/** What a command hands back: data for --json and lines for people. */
export interface CommandResult {
  json?: unknown;
  text?: string;
  /** Raw bytes to write to stdout verbatim (e.g. --manifest, fetch to -). */
  raw?: Buffer | string;
  exitCode?: number;
}

export function colorFor(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv, json: boolean): ChalkInstance {
  const off = json || !stream.isTTY || env.NO_COLOR !== undefined || env.TERM === 'dumb';
  return new Chalk({ level: off ? 0 : 1 });
}

export function render(io: CliIO, result: CommandResult | void, json: boolean): void {
  if (!result) return;
  if (result.raw !== undefined) {
    io.stdout.write(result.raw);
    return;
  }
  if (json) {
    if (result.json !== undefined) io.stdout.write(JSON.stringify(result.json, null, 2) + '\n');
    return;
  }
  if (result.text) io.stdout.write(result.text.endsWith('\n') ? result.text : result.text + '\n');
}

/** Align columns with two spaces, like docker's tables. */
export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]))).join('   ').trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
export function humanBytes(n: number): string {
  let i = 0;
  let v = n;
  while (v >= 1024 && i < UNITS.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2)} ${UNITS[i]}`;
}

export function humanAge(date: Date | undefined, now = Date.now()): string {
  if (!date || Number.isNaN(date.getTime())) return '-';
  const s = Math.max(0, Math.round((now - date.getTime()) / 1000));
  if (s < 60) return `${s} seconds ago`;
  const m = Math.round(s / 60);
  if (m < 60) return `${m} minute${m === 1 ? '' : 's'} ago`;
  const h = Math.round(m / 60);
  if (h < 48) return `${h} hour${h === 1 ? '' : 's'} ago`;
  const d = Math.round(h / 24);
  if (d < 60) return `${d} days ago`;
  return date.toISOString().slice(0, 10);
}

export function shortDigest(d: string): string {
  const hex = d.slice(d.indexOf(':') + 1);
  return hex.slice(0, 12);
}
