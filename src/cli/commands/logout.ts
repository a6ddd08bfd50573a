import type { CommandDefinition } from '../define.js';
import { logout } from '../../remote/index.js';

export const logoutCommand: CommandDefinition = {
  name: 'logout',
  summary: 'remove saved credentials for a registry',
  configure(cmd) {
    cmd.argument('<registry>', 'registry host[:port]');
  },
  async run(args, _opts, ctx) {
    const res = await logout(args[0], { env: ctx.env, signal: ctx.signal });
    return {
      json: { registry: args[0], ...res },
      text: res.removed ? `Removed login credentials for ${args[0]}` : `Not logged in to ${args[0]}`,
    };
  },
};
