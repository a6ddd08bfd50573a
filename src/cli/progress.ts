import type { Ora } from 'ora';
import type { ProgressEvent, ProgressFn } from '../util/progress.js';
import { humanBytes } from './output.js';
import type { CliIO } from './context.js';

interface Unit {
  label: string;
  total?: number;
  done: number;
}

/**
 * Aggregates core progress events into one overall line: bytes done / total, rate, ETA, and the active transfers.
 * On a TTY it drives an ora spinner (redrawn at most 10 times a second, whatever the number of files); otherwise it
 * prints a plain line every `plainIntervalMs` for long operations. Cost per event is O(1), so 10,000 files are fine.
 */
export class ProgressRenderer {
  private readonly units = new Map<string, Unit>();
  private readonly active = new Set<string>();
  private totalBytes = 0;
  private doneBytes = 0;
  private finished = 0;
  private skipped = 0;
  private readonly start = Date.now();
  private spinner?: Ora;
  private timer?: NodeJS.Timeout;
  private lastPlain = Date.now();

  constructor(
    private readonly io: CliIO,
    private readonly mode: 'tty' | 'plain',
    private readonly verb: string,
    private readonly plainIntervalMs = 5000,
    /** ora, loaded by the caller only for a TTY (it is not needed, nor loaded, for plain output). */
    private readonly ora?: typeof import('ora').default,
  ) {}

  readonly handle: ProgressFn = (ev: ProgressEvent) => {
    switch (ev.type) {
      case 'start': {
        const u = { label: ev.label, total: ev.total, done: 0 };
        this.units.set(ev.id, u);
        this.active.add(ev.id);
        if (ev.total) this.totalBytes += ev.total;
        this.ensureTimer();
        break;
      }
      case 'advance': {
        const u = this.units.get(ev.id);
        if (u) u.done += ev.bytes;
        this.doneBytes += ev.bytes;
        break;
      }
      case 'done': {
        const u = this.units.get(ev.id);
        this.active.delete(ev.id);
        this.finished++;
        if (ev.skipped) {
          this.skipped++;
          if (u?.total) this.totalBytes -= u.total;
        } else if (u?.total && u.done < u.total) {
          this.doneBytes += u.total - u.done;
        }
        this.units.delete(ev.id);
        break;
      }
    }
  };

  private ensureTimer(): void {
    if (this.timer) return;
    if (this.mode === 'tty' && this.ora) {
      this.spinner = this.ora({ stream: this.io.stderr as NodeJS.WritableStream, text: this.fit(this.line()), discardStdin: false }).start();
      this.timer = setInterval(() => {
        if (this.spinner) this.spinner.text = this.fit(this.line());
      }, 100);
    } else {
      this.timer = setInterval(() => {
        if (Date.now() - this.lastPlain >= this.plainIntervalMs) {
          this.lastPlain = Date.now();
          this.io.stderr.write(this.line() + '\n');
        }
      }, 500);
    }
    this.timer.unref();
  }

  /** One terminal row at most: the spinner redraws in place only when its text never wraps. */
  private fit(text: string): string {
    const width = Math.max(20, (this.io.stderr.columns ?? 80) - 3);
    return text.length > width ? text.slice(0, width - 1) + '…' : text;
  }

  line(): string {
    const elapsed = (Date.now() - this.start) / 1000;
    const rate = elapsed > 0 ? this.doneBytes / elapsed : 0;
    const parts = [`${this.verb} ${humanBytes(this.doneBytes)}${this.totalBytes ? ` / ${humanBytes(this.totalBytes)}` : ''}`];
    if (rate > 0) parts.push(`${humanBytes(rate)}/s`);
    if (rate > 0 && this.totalBytes > this.doneBytes) parts.push(`ETA ${fmtDuration((this.totalBytes - this.doneBytes) / rate)}`);
    parts.push(`${this.finished} done${this.skipped ? ` (${this.skipped} skipped)` : ''}`);
    const names = [...this.active].slice(0, 3).map((id) => this.units.get(id)?.label ?? id);
    if (names.length) parts.push(names.join(', ') + (this.active.size > 3 ? ` +${this.active.size - 3}` : ''));
    return parts.join(' | ');
  }

  stop(ok: boolean): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.spinner) {
      if (ok) this.spinner.stop();
      else this.spinner.stop();
      this.spinner = undefined;
    }
  }
}

function fmtDuration(s: number): string {
  if (!Number.isFinite(s)) return '?';
  if (s < 60) return `${Math.ceil(s)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${Math.round(s % 60)}s`;
  return `${Math.floor(s / 3600)}h${Math.round((s % 3600) / 60)}m`;
}
