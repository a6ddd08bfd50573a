import { readAllCapped } from '../../util/stream.js';
import type { CommandDefinition } from '../define.js';
import { addRemoteFlags, remoteOptions } from '../remote-flags.js';
import { login } from '../../remote/index.js';
import { ModctlError } from '../../errors.js';

async function readSecret(stdin: NodeJS.ReadableStream | undefined): Promise<string> {
  if (!stdin) throw new ModctlError('E_USAGE', 'no standard input to read the password from', { exitCode: 2 });
  const bytes = await readAllCapped(stdin, 64 * 1024, () => new ModctlError('E_USAGE', 'the password on standard input is over 64 KiB', { exitCode: 2 }));
  // docker strips one trailing newline (echo "$TOKEN" | … --password-stdin)
  return bytes.toString('utf8').replace(/\r?\n$/, '');
}

export const loginCommand: CommandDefinition = {
  name: 'login',
  summary: 'check credentials against a registry and save them (Docker config.json or its credential helper)',
  configure(cmd) {
    addRemoteFlags(
      cmd
        .argument('<registry>', 'registry host[:port], e.g. registry.example.com')
        .requiredOption('-u, --username <user>', 'user name')
        .option('-p, --password <password>', 'password or token (visible to other processes: prefer --password-stdin)')
        .option('--password-stdin', 'read the password or token from standard input'),
    );
  },
  async run(args, opts, ctx) {
    if (opts.password !== undefined && opts.passwordStdin) {
      throw new ModctlError('E_USAGE', '--password and --password-stdin cannot be combined', { exitCode: 2 });
    }
    let password: string;
    if (opts.password !== undefined) {
      ctx.warn('using --password on the command line exposes it to other users of this machine (process list, shell history); use --password-stdin');
      password = opts.password;
    } else if (opts.passwordStdin || (ctx.io.stdin && !(ctx.io.stdin as { isTTY?: boolean }).isTTY)) {
      // like modctl (whose --password-stdin defaults to true): a password piped in is read without the flag
      password = await readSecret(ctx.io.stdin);
    } else {
      throw new ModctlError('E_USAGE', 'no password given', { exitCode: 2, hint: `echo "$TOKEN" | modctl login ${args[0]} -u <user> --password-stdin` });
    }
    if (!password) throw new ModctlError('E_USAGE', 'the password is empty', { exitCode: 2 });
    const res = await login(args[0], opts.username, password, remoteOptions(opts, ctx));
    return {
      json: { registry: args[0], username: opts.username, ...res },
      text: `Login Succeeded (credentials saved ${res.stored === 'helper' ? 'through the credential helper' : `in ${res.configPath}`})`,
    };
  },
};
