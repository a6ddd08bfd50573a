import { UsageError } from '../errors.js';

/**
 * Image references, `[registry[:port]/]repository[:tag][@digest]`, parsed per the distribution reference grammar
 * with Docker's normalisation: the first component is a registry only if it has a `.` or `:` or is `localhost`;
 * otherwise the registry is docker.io and single-component names get `library/`.
 */
export interface Reference {
  registry: string;
  repository: string;
  tag?: string;
  digest?: string;
}

export const DOCKER_HUB = 'docker.io';

const COMPONENT = '[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*';
const NAME_RE = new RegExp(`^${COMPONENT}(?:/${COMPONENT})*$`);
const TAG_RE = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
const DIGEST_RE = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;
// host: DNS labels or an IPv6 literal in brackets, optional port
const HOST_RE = /^(?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?$/;

function invalid(input: string, why: string): UsageError {
  return new UsageError(`invalid reference ${JSON.stringify(input)}: ${why}`, {
    code: 'E_REFERENCE',
    hint: 'use [registry[:port]/]repository[:tag][@sha256:<digest>], e.g. registry.example.com/models/llama3:v1',
  });
}

export function parseReference(input: string, opts: { defaultTag?: string | false } = {}): Reference {
  const s = input.trim();
  if (!s) throw invalid(input, 'empty');
  let rest = s;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST_RE.test(digest)) throw invalid(input, `bad digest ${JSON.stringify(digest)}`);
    if (digest.startsWith('sha256:') && !/^sha256:[a-f0-9]{64}$/.test(digest))
      throw invalid(input, 'a sha256 digest must be 64 lower-case hex characters');
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG_RE.test(tag)) throw invalid(input, `bad tag ${JSON.stringify(tag)} (letters, digits, _ . - ; at most 128)`);
  }
  if (!rest) throw invalid(input, 'missing repository name');
  const parts = rest.split('/');
  let registry = DOCKER_HUB;
  if (parts.length > 1 && (parts[0].includes('.') || parts[0].includes(':') || parts[0] === 'localhost')) {
    registry = parts.shift()!;
    if (!HOST_RE.test(registry)) throw invalid(input, `bad registry host ${JSON.stringify(registry)}`);
  }
  let repository = parts.join('/');
  if (/[A-Z]/.test(repository)) throw invalid(input, 'repository names must be lower case');
  if (!NAME_RE.test(repository)) throw invalid(input, `bad repository name ${JSON.stringify(repository)}`);
  if (registry === 'index.docker.io' || registry === 'registry-1.docker.io') registry = DOCKER_HUB;
  if (registry === DOCKER_HUB && !repository.includes('/')) repository = `library/${repository}`;
  if (registry.length + 1 + repository.length > 255) throw invalid(input, 'name longer than 255 characters');
  if (!tag && !digest && opts.defaultTag !== false) tag = opts.defaultTag ?? 'latest';
  return { registry, repository, tag, digest };
}

/** `registry/repository` */
export function repoName(ref: Reference): string {
  return `${ref.registry}/${ref.repository}`;
}

/** Full canonical string: `registry/repository[:tag][@digest]`. */
export function formatReference(ref: Reference): string {
  let s = repoName(ref);
  if (ref.tag) s += `:${ref.tag}`;
  if (ref.digest) s += `@${ref.digest}`;
  return s;
}

/** The string a user would type back: Docker Hub names shortened the way docker does. */
export function familiarName(ref: Reference): string {
  let repo = repoName(ref);
  if (ref.registry === DOCKER_HUB) {
    repo = ref.repository.startsWith('library/') ? ref.repository.slice(8) : ref.repository;
  }
  return repo;
}

/** The host to talk to for a registry name (Docker Hub's API lives elsewhere). */
export function registryHost(registry: string): string {
  return registry === DOCKER_HUB ? 'registry-1.docker.io' : registry;
}

export function isLoopbackRegistry(registry: string): boolean {
  const host = registry.replace(/:[0-9]+$/, '').replace(/^\[|\]$/g, '');
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}
