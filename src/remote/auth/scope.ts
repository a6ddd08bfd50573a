/**
 * Token scopes (distribution token-scope grammar, registry-client.md §10.3): `type[(class)]:name:action[,action]*`.
 * The name may contain one `:` (host:port), so the type ends at the first colon and the actions start after the last.
 * Actions are compared as sets (2.8 challenges `push,pull` for a POST). Pure; no IO.
 */

export interface Scope {
  type: string;
  name: string;
  actions: string[];
}

export function parseScope(s: string): Scope | undefined {
  const first = s.indexOf(':');
  const last = s.lastIndexOf(':');
  if (first <= 0 || last === first) return undefined;
  const type = s.slice(0, first);
  const name = s.slice(first + 1, last);
  const actions = s
    .slice(last + 1)
    .split(',')
    .map((a) => a.trim())
    .filter(Boolean);
  if (!name) return undefined;
  return { type, name, actions: [...new Set(actions)].sort() };
}

export function formatScope(s: Scope): string {
  return `${s.type}:${s.name}:${s.actions.join(',')}`;
}

/** `repository:<name>:<actions>` */
export function repositoryScope(name: string, ...actions: string[]): string {
  return formatScope({ type: 'repository', name, actions: [...new Set(actions)].sort() });
}

/**
 * Union of scopes: same type+name merge their action sets; output is sorted and canonical, so it can serve as a
 * cache key. Unparseable entries are kept verbatim.
 */
export function mergeScopes(...lists: ReadonlyArray<readonly string[]>): string[] {
  const byKey = new Map<string, Scope>();
  const raw = new Set<string>();
  for (const list of lists) {
    for (const s of list) {
      const p = parseScope(s);
      if (!p) {
        if (s.trim()) raw.add(s.trim());
        continue;
      }
      const key = `${p.type}\u0000${p.name}`;
      const cur = byKey.get(key);
      if (cur) cur.actions = [...new Set([...cur.actions, ...p.actions])].sort();
      else byKey.set(key, { ...p });
    }
  }
  return [...[...byKey.values()].map(formatScope), ...raw].sort();
}

/** Whether `have` grants every action of every scope in `need` (`*` grants all). */
export function scopesCover(have: readonly string[], need: readonly string[]): boolean {
  const granted = new Map<string, Set<string>>();
  for (const s of have) {
    const p = parseScope(s);
    if (!p) continue;
    const key = `${p.type}\u0000${p.name}`;
    const set = granted.get(key) ?? new Set<string>();
    for (const a of p.actions) set.add(a);
    granted.set(key, set);
  }
  for (const s of need) {
    const p = parseScope(s);
    if (!p) {
      if (!have.includes(s)) return false;
      continue;
    }
    const set = granted.get(`${p.type}\u0000${p.name}`);
    if (!set) return false;
    if (set.has('*')) continue;
    for (const a of p.actions) if (!set.has(a)) return false;
  }
  return true;
}
