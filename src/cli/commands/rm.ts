import type { CommandDefinition } from '../define.js';
import { formatReference, parseReference } from '../../oci/reference.js';
import { isDigest } from '../../oci/digest.js';
import { NotFoundError } from '../../errors.js';

export const rmCommand: CommandDefinition = {
  name: 'rm',
  summary: 'remove a tag (a digest reference removes the manifest and all its tags)',
  configure(cmd) {
    cmd.alias('remove').argument('<ref...>', 'references to remove');
  },
  async run(args, _opts, ctx) {
    const store = await ctx.store();
    const deleted: string[] = [];
    for (const input of args) {
      const idx = await store.readIndex();
      const exact = idx.manifests.some((d) => d.annotations?.['org.opencontainers.image.ref.name'] === input);
      if (exact) {
        await store.untag(input);
        deleted.push(input);
        continue;
      }
      const ref = isDigest(input) ? undefined : parseReference(input);
      const digest = isDigest(input) ? input : ref!.digest;
      if (digest) {
        if (!(await store.hasBlob(digest)) && !idx.manifests.some((d) => d.digest === digest)) throw new NotFoundError(`${input} is not in the local store`);
        const tags = await store.removeManifest(digest);
        deleted.push(...(tags.length ? tags : [digest]));
        continue;
      }
      const name = formatReference(ref!);
      if (!(await store.untag(name))) {
        throw new NotFoundError(`${input} is not in the local store`, { hint: 'run `modctl ls` to see the stored references' });
      }
      deleted.push(name);
    }
    return { json: { deleted }, text: deleted.map((d) => `Deleted: ${d}`).join('\n') + '\nRun `modctl prune` to free the disk space of unreferenced blobs.' };
  },
};
