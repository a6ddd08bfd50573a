/**
 * Typed errors. Every failure the user can cause or meet carries a stable `code`, the process exit code the CLI
 * should use, and an optional `hint` saying what to do. Only src/cli maps them to exit codes and output.
 */

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;
export const EXIT_INTERRUPTED = 130;

export interface ErrorOptions {
  hint?: string;
  cause?: unknown;
  exitCode?: number;
}

export class ModctlError extends Error {
  readonly code: string;
  readonly exitCode: number;
  readonly hint?: string;

  constructor(code: string, message: string, opts: ErrorOptions = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.code = code;
    this.exitCode = opts.exitCode ?? EXIT_FAILURE;
    this.hint = opts.hint;
  }
}

/** Bad flags, arguments or references given on the command line (exit 2). */
export class UsageError extends ModctlError {
  constructor(message: string, opts: ErrorOptions & { code?: string } = {}) {
    super(opts.code ?? 'E_USAGE', message, { ...opts, exitCode: EXIT_USAGE });
  }
}

/** One problem found in a Modelfile, with a 1-based position. */
export interface Diagnostic {
  file: string;
  line: number;
  column: number;
  /** Length of the offending span, for the caret underline (at least 1). */
  length: number;
  message: string;
  /** The source line, without its newline. */
  source: string;
  hint?: string;
}

export function formatDiagnostic(d: Diagnostic): string {
  const caret = ' '.repeat(Math.max(0, d.column - 1)) + '^'.repeat(Math.max(1, d.length));
  let out = `${d.file}:${d.line}:${d.column}: ${d.message}\n  ${d.source}\n  ${caret}`;
  if (d.hint) out += `\n  hint: ${d.hint}`;
  return out;
}

/** A Modelfile with one or more syntax or semantic errors; all of them are listed. */
export class ModelfileError extends ModctlError {
  readonly diagnostics: Diagnostic[];
  constructor(diagnostics: Diagnostic[]) {
    const first = diagnostics[0];
    const summary =
      diagnostics.length === 1
        ? `${first.file}:${first.line}:${first.column}: ${first.message}`
        : `${diagnostics.length} errors in ${first.file}`;
    super('E_MODELFILE', summary, { exitCode: EXIT_FAILURE, hint: 'fix the Modelfile at the positions shown' });
    this.diagnostics = diagnostics;
  }
}

export class NotFoundError extends ModctlError {
  constructor(message: string, opts: ErrorOptions = {}) {
    super('E_NOT_FOUND', message, opts);
  }
}

export class DigestMismatchError extends ModctlError {
  readonly expected: string;
  readonly actual: string;
  constructor(expected: string, actual: string, what = 'content') {
    super('E_DIGEST_MISMATCH', `${what} digest mismatch: expected ${expected}, got ${actual}`, {
      hint: 'the source returned corrupt or different bytes; nothing was stored',
    });
    this.expected = expected;
    this.actual = actual;
  }
}

export class SizeMismatchError extends ModctlError {
  constructor(expected: number, actual: number, what = 'content') {
    super('E_SIZE_MISMATCH', `${what} size mismatch: expected ${expected} bytes, got ${actual}`, {
      hint: 'the source returned truncated or extra bytes; nothing was stored',
    });
  }
}

/** A path in an artifact or archive that would land outside the output directory (or through a symlink). */
export class UnsafePathError extends ModctlError {
  readonly path: string;
  constructor(path: string, reason: string) {
    super('E_UNSAFE_PATH', `refusing unsafe path ${JSON.stringify(path)}: ${reason}`, {
      hint: 'the artifact is malformed or hostile; nothing was written outside the output directory',
    });
    this.path = path;
  }
}

export class AbortedError extends ModctlError {
  constructor(message = 'interrupted') {
    super('E_INTERRUPTED', message, { exitCode: EXIT_INTERRUPTED });
  }
}

/** Anything the registry said no to, or a transport failure talking to it. */
export class RegistryError extends ModctlError {
  readonly status?: number;
  readonly registry: string;
  readonly operation: string;
  readonly ociCodes: string[];
  constructor(
    registry: string,
    operation: string,
    message: string,
    opts: ErrorOptions & { status?: number; ociCodes?: string[]; code?: string } = {},
  ) {
    super(opts.code ?? 'E_REGISTRY', `${registry}: ${operation}: ${message}`, opts);
    this.status = opts.status;
    this.registry = registry;
    this.operation = operation;
    this.ociCodes = opts.ociCodes ?? [];
  }
}

export class AuthError extends RegistryError {
  constructor(registry: string, operation: string, message: string, opts: ErrorOptions & { status?: number; ociCodes?: string[] } = {}) {
    super(registry, operation, message, {
      hint: `check your credentials: modctl login ${registry}`,
      ...opts,
      code: 'E_UNAUTHORIZED',
    });
  }
}

/** A bug: should never happen, reported with a request to file an issue. */
export class InternalError extends ModctlError {
  constructor(message: string, opts: ErrorOptions = {}) {
    super('E_INTERNAL', message, { ...opts, hint: 'this is a bug in modctl; please report it with the --debug output' });
  }
}

export function isAbortError(err: unknown): boolean {
  if (err instanceof AbortedError) return true;
  const e = err as { name?: string; code?: string } | null;
  return !!e && (e.name === 'AbortError' || e.code === 'ABORT_ERR');
}

/** Throw AbortedError if the signal fired. */
export function throwIfAborted(signal?: AbortSignal): void {
  if (signal?.aborted) throw new AbortedError();
}
