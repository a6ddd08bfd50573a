import type { ChalkInstance } from 'chalk';
import { ModctlError, ModelfileError, InternalError, formatDiagnostic, isAbortError } from '../errors.js';

/** Secrets never reach the terminal: strip userinfo and signed query strings from any URL in a message. */
export function redactText(s: string): string {
  return s
    .replace(/(\b[a-z][a-z0-9+.-]*:\/\/)[^/\s@]+@/gi, '$1')
    .replace(/([?&](?:X-Amz-[A-Za-z-]+|Signature|sig|se|sp|sv|token|access_token|Expires|Key-Pair-Id|Policy)=)[^&\s"']+/g, '$1REDACTED')
    .replace(/(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}/g, '$1 REDACTED');
}

/** One clear line (plus hint) per error; cause chain and stack only with --debug. */
export function renderError(err: unknown, c: ChalkInstance, debug: boolean): string {
  const lines: string[] = [];
  if (err instanceof ModelfileError) {
    for (const d of err.diagnostics) lines.push(c.red('error: ') + formatDiagnostic(d));
    if (err.diagnostics.length > 1) lines.push(c.red(`${err.diagnostics.length} errors in ${err.diagnostics[0].file}`));
  } else if (err instanceof ModctlError) {
    lines.push(c.red('error: ') + err.message);
    if (err.hint) lines.push(c.dim('hint: ') + err.hint);
  } else if (isAbortError(err)) {
    lines.push(c.red('error: ') + 'interrupted');
  } else {
    const e = err as Error;
    const wrapped = new InternalError(e?.message ?? String(err));
    lines.push(c.red('error: ') + `unexpected failure: ${wrapped.message}`);
    lines.push(c.dim('hint: ') + wrapped.hint);
  }
  if (debug) {
    let cur: unknown = err;
    let depth = 0;
    while (cur && depth < 5) {
      const e = cur as Error & { code?: string };
      lines.push(c.dim(`[debug] ${e.name ?? 'Error'}${e.code ? ` (${e.code})` : ''}: ${e.stack ?? e.message ?? String(cur)}`));
      cur = e.cause;
      depth++;
    }
  }
  return redactText(lines.join('\n')) + '\n';
}
