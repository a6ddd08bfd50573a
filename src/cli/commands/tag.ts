import type { CommandDefinition } from '../define.js';
import { formatReference, parseReference } from '../../oci/reference.js';
import { ModctlError } from '../../errors.js';

export const tagCommand: CommandDefinition = {
  name: 'tag',
  summary: 'give a stored artifact another reference',
  configure(cmd) {
    cmd.argument('<source>', 'existing reference').argument('<target>', 'new reference');
  },
  async run(args, _opts, ctx) {
    const store = await ctx.store();
    const src = await store.resolve(args[0]);
    const dst = parseReference(args[1]);
    if (dst.digest) throw new ModctlError('E_REFERENCE', `tag target ${args[1]} must be a tag, not a digest`, { exitCode: 2 });
    const name = formatReference(dst);
    const { annotations: _drop, ...desc } = src.descriptor;
    await store.tag(name, desc);
    return { json: { source: src.name, target: name, digest: src.descriptor.digest }, text: `Tagged ${src.name} as ${name}` };
  },
};
