import type { CommandDefinition } from '../define.js';
import { humanAge, humanBytes, shortDigest, table } from '../output.js';
import { familiarName } from '../../oci/reference.js';
import { parseManifestJson, isIndex } from '../../content/artifact.js';
import type { LocalStore } from '../../content/local-store.js';
import type { Descriptor } from '../../oci/types.js';

interface Row {
  repository: string;
  tag: string;
  reference: string;
  digest: string;
  created?: string;
  size: number;
  artifactType?: string;
}

async function artifactInfo(store: LocalStore, d: Descriptor): Promise<{ size: number; created?: string; artifactType?: string }> {
  try {
    const bytes = await store.readBlob(d.digest);
    const m = parseManifestJson(bytes, d.digest);
    if (isIndex(m)) {
      let size = bytes.length;
      for (const c of m.manifests) size += (await artifactInfo(store, c)).size;
      return { size, artifactType: m.artifactType };
    }
    let created: string | undefined;
    try {
      const cfg = JSON.parse((await store.readBlob(m.config.digest)).toString('utf8'));
      created = cfg?.descriptor?.createdAt ?? cfg?.created ?? cfg?.descriptor?.created;
    } catch {
      // config missing or not JSON
    }
    created ??= m.annotations?.['org.opencontainers.image.created'];
    const size = bytes.length + m.config.size + m.layers.reduce((a, l) => a + l.size, 0);
    return { size, created, artifactType: m.artifactType ?? m.config.mediaType };
  } catch {
    return { size: d.size };
  }
}

export const lsCommand: CommandDefinition = {
  name: 'ls',
  summary: 'list artifacts in the local store',
  configure(cmd) {
    cmd.alias('list');
  },
  async run(_args, _opts, ctx) {
    const store = await ctx.store();
    const rows: Row[] = [];
    for (const t of await store.listTagged()) {
      const info = await artifactInfo(store, t.descriptor);
      rows.push({
        repository: t.ref.registry === 'local' ? t.name : familiarName(t.ref),
        tag: t.ref.tag ?? '<none>',
        reference: t.name,
        digest: t.descriptor.digest,
        created: info.created,
        size: info.size,
        artifactType: info.artifactType,
      });
    }
    rows.sort((a, b) => (b.created ?? '').localeCompare(a.created ?? '') || a.reference.localeCompare(b.reference));
    return {
      json: rows,
      text: table(
        ['REPOSITORY', 'TAG', 'DIGEST', 'CREATED', 'SIZE'],
        rows.map((r) => [r.repository, r.tag, shortDigest(r.digest), humanAge(r.created ? new Date(r.created) : undefined), humanBytes(r.size)]),
      ),
    };
  },
};
