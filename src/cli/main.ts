import { Command, CommanderError, Option } from 'commander';
import { EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, ModctlError, isAbortError } from '../errors.js';
import { makeStoreOpener, storageDirFrom, type CliContext, type CliIO, type GlobalOptions } from './context.js';
import { colorFor, render } from './output.js';
import { ProgressRenderer } from './progress.js';
import { renderError, redactText } from './render-error.js';
import { COMMANDS } from './commands/index.js';
import { VERSION } from './version.js';

/**
 * The CLI entry: parse argv, run one command, render its result, and map any error to an exit code. This is the only
 * place that decides exit codes: 0 ok, 1 failure, 2 usage, 130 interrupted.
 */
export async function main(argv: string[], io: CliIO): Promise<number> {
  const controller = new AbortController();
  let interrupts = 0;
  const onSignal = () => {
    interrupts++;
    if (interrupts > 1) {
      io.stderr.write('\ninterrupted again; exiting now\n');
      process.exit(EXIT_INTERRUPTED);
    }
    controller.abort();
  };
  io.on?.('SIGINT', onSignal);
  io.on?.('SIGTERM', onSignal);

  let debug = argv.includes('--debug');
  let json = argv.includes('--json');
  let exitCode = EXIT_OK;
  let progress: ProgressRenderer | undefined;
  const program = new Command('modctl');
  program
    .description('Package, store and ship AI models as CNCF ModelPack OCI artifacts')
    .version(VERSION, '-v, --version', 'print the version')
    .option('--storage-dir <dir>', 'local store directory (env MODCTL_STORAGE_DIR; default ~/.modctl/store)')
    .option('--json', 'machine-readable JSON results on stdout')
    .option('--no-progress', 'no progress output on stderr')
    .option('--debug', 'show error causes and stack traces')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
      outputError: (s, write) => write(colorFor(io.stderr, io.env, json).red(s)),
    });

  const groups = new Map<string, Command>();
  for (const def of COMMANDS) {
    // `group-verb` definitions become nested commands (`modctl modelfile generate`).
    const [group, verb] = def.name.includes('-') ? def.name.split('-', 2) : [undefined, def.name];
    let parent: Command = program;
    if (group) {
      let g = groups.get(group);
      if (!g) {
        g = program.command(group).description(`${group} commands`);
        g.exitOverride();
        groups.set(group, g);
      }
      parent = g;
    }
    const cmd = parent.command(verb).description(def.summary);
    cmd.exitOverride();
    def.configure(cmd);
    cmd.action(async (...all: unknown[]) => {
      const command = all[all.length - 1] as Command;
      const opts = command.opts();
      const g = command.optsWithGlobals() as GlobalOptions;
      json = !!g.json;
      debug = !!g.debug;
      const showProgress = g.progress !== false && !json && !!def.progressVerb;
      if (showProgress) {
        // A spinner needs a real terminal width (ora loops clearing lines when `columns` is 0, e.g. under `script`).
        const tty = !!io.stderr.isTTY && (io.stderr.columns ?? 0) >= 20;
        const oraFn = tty ? (await import('ora')).default : undefined;
        progress = new ProgressRenderer(io, tty ? 'tty' : 'plain', def.progressVerb!, 5000, oraFn);
      }
      const c = colorFor(io.stderr, io.env, json);
      const storageDir = storageDirFrom(g, io.env);
      const ctx: CliContext = {
        io,
        env: io.env,
        cwd: io.cwd(),
        signal: controller.signal,
        json,
        debug,
        progress: progress?.handle ?? (() => {}),
        warn: (m) => io.stderr.write(c.yellow('warning: ') + redactText(m) + '\n'),
        info: (m) => {
          if (!json) io.stderr.write(redactText(m) + '\n');
        },
        storageDir,
        store: makeStoreOpener(storageDir),
      };
      const result = await def.run(command.args, opts, ctx);
      progress?.stop(true);
      progress = undefined;
      render(io, result, json);
      if (result && result.exitCode !== undefined) exitCode = result.exitCode;
    });
  }

  try {
    if (argv.length === 0) {
      program.outputHelp();
      return EXIT_USAGE;
    }
    await program.parseAsync(argv, { from: 'user' });
  } catch (err) {
    progress?.stop(false);
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') exitCode = EXIT_OK;
      else exitCode = EXIT_USAGE;
    } else {
      io.stderr.write(renderError(err, colorFor(io.stderr, io.env, json), debug));
      if (isAbortError(err) || controller.signal.aborted) exitCode = EXIT_INTERRUPTED;
      else if (err instanceof ModctlError) exitCode = err.exitCode;
      else exitCode = EXIT_FAILURE;
      // Scripts asking for --json get the failure as JSON on stdout too (same shape for every command).
      if (json) io.stdout.write(JSON.stringify({ error: errorJson(err, exitCode) }, null, 2) + '\n');
    }
  } finally {
    io.off?.('SIGINT', onSignal);
    io.off?.('SIGTERM', onSignal);
  }
  return exitCode;
}

function errorJson(err: unknown, exitCode: number): Record<string, unknown> {
  if (err instanceof ModctlError) {
    const out: Record<string, unknown> = { code: err.code, message: redactText(err.message), exitCode };
    if (err.hint) out.hint = redactText(err.hint);
    const diags = (err as { diagnostics?: Array<Record<string, unknown>> }).diagnostics;
    if (diags) out.diagnostics = diags.map(({ file, line, column, message, hint }) => ({ file, line, column, message, hint }));
    return out;
  }
  if (isAbortError(err)) return { code: 'E_INTERRUPTED', message: 'interrupted', exitCode };
  return { code: 'E_INTERNAL', message: redactText(String((err as Error)?.message ?? err)), exitCode };
}

export { Option };
