import type { Command } from 'commander';
import type { CliContext } from './context.js';
import type { CommandResult } from './output.js';

/**
 * One command per file. `configure` declares arguments and options on the commander Command; `run` receives the
 * positional arguments and parsed options and returns a result for the single renderer (or throws a typed error).
 */
export interface CommandDefinition {
  name: string;
  summary: string;
  configure(cmd: Command): void;
  /** Verb shown on the progress line ("Building", "Pushing"…); absent = no progress. */
  progressVerb?: string;
  run(args: string[], opts: Record<string, any>, ctx: CliContext): Promise<CommandResult | void>;
}

/** commander option parser for positive integers (throws a commander-style error). */
export function positiveInt(name: string) {
  return (v: string): number => {
    if (!/^\d+$/.test(v) || Number(v) < 1) throw new Error(`${name} must be a positive integer, got ${JSON.stringify(v)}`);
    return Number(v);
  };
}

/** Parse a --flag=true|false value (modctl's `--raw=false` style). */
export function boolValue(name: string) {
  return (v: string): boolean => {
    const s = v.toLowerCase();
    if (['true', '1', 'yes', 'on'].includes(s)) return true;
    if (['false', '0', 'no', 'off'].includes(s)) return false;
    throw new Error(`${name} must be true or false, got ${JSON.stringify(v)}`);
  };
}
