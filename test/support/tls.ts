/**
 * Test-only TLS material generated with the `openssl` CLI (Node can parse X.509 but not create it).
 *
 * `generateTlsCerts()` writes a throw-away CA and a server certificate for 127.0.0.1 / localhost signed by it.
 * `generateSigningCert()` writes a self-signed P-256 key pair used by the token server to sign ES256 JWTs.
 */
import { execFile } from 'node:child_process';
import { rmSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TlsCerts {
  /** Directory holding every file below; removed by `cleanup()`. */
  dir: string;
  /** PEM of the self-signed CA (what clients must trust). */
  caFile: string;
  caKeyFile: string;
  /** PEM server certificate with subjectAltName IP:127.0.0.1, DNS:localhost, signed by the CA. */
  certFile: string;
  /** PEM private key (PKCS#8) of the server certificate. */
  keyFile: string;
  cleanup(): Promise<void>;
}

export interface SigningCert {
  dir: string;
  /** PEM self-signed certificate (usable as leaf and as the registry's `rootcertbundle`). */
  certFile: string;
  /** PEM EC P-256 private key. */
  keyFile: string;
  cleanup(): Promise<void>;
}

const exitCleanups = new Set<() => void>();
let exitHookInstalled = false;

/**
 * Registers a synchronous cleanup to run on process 'exit' (e.g. when a test throws before calling `stop()`).
 * Returns a function that unregisters it. Shared by every helper in test/support.
 */
export function registerExitCleanup(fn: () => void): () => void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', () => {
      for (const f of [...exitCleanups]) {
        try {
          f();
        } catch {
          // best effort while exiting
        }
      }
    });
  }
  exitCleanups.add(fn);
  return () => {
    exitCleanups.delete(fn);
  };
}

/** Removes `dir` on process exit unless the returned function is called first. */
export function removeOnExit(dir: string): () => void {
  return registerExitCleanup(() => rmSync(dir, { recursive: true, force: true }));
}

/** Runs `openssl` with `args`; rejects with its stderr and an install hint on failure. */
export function runOpenssl(args: string[], cwd?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('openssl', args, { cwd, timeout: 30_000 }, (err, stdout, stderr) => {
      if (!err) {
        resolve(stdout);
        return;
      }
      const e = err as NodeJS.ErrnoException;
      if (e.code === 'ENOENT') {
        reject(new Error('openssl not found on PATH: install the `openssl` Debian package (apt-get install openssl)'));
        return;
      }
      reject(new Error(`openssl ${args.join(' ')} failed: ${err.message}\n${stderr}`));
    });
  });
}

async function makeDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

/** Self-signed CA plus a server certificate for 127.0.0.1 and localhost, in a fresh temp dir. */
export async function generateTlsCerts(opts: { dir?: string } = {}): Promise<TlsCerts> {
  const dir = opts.dir ?? (await makeDir('modctl-tls-'));
  const owned = opts.dir === undefined;
  const unregister = owned ? removeOnExit(dir) : () => undefined;
  const caFile = join(dir, 'ca.pem');
  const caKeyFile = join(dir, 'ca-key.pem');
  const certFile = join(dir, 'server.pem');
  const keyFile = join(dir, 'server-key.pem');
  const csrFile = join(dir, 'server.csr');
  const extFile = join(dir, 'server.ext');
  try {
    await runOpenssl([
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', caKeyFile, '-out', caFile, '-days', '2', '-subj', '/CN=modctl test CA',
      '-addext', 'basicConstraints=critical,CA:TRUE',
      '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    ]);
    await runOpenssl([
      'req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', keyFile, '-out', csrFile, '-subj', '/CN=127.0.0.1',
    ]);
    await writeFile(
      extFile,
      [
        'basicConstraints=critical,CA:FALSE',
        'keyUsage=critical,digitalSignature,keyEncipherment',
        'extendedKeyUsage=serverAuth',
        'subjectAltName=IP:127.0.0.1,DNS:localhost',
        'authorityKeyIdentifier=keyid',
        '',
      ].join('\n'),
    );
    await runOpenssl([
      'x509', '-req', '-in', csrFile, '-CA', caFile, '-CAkey', caKeyFile, '-CAcreateserial',
      '-out', certFile, '-days', '2', '-sha256', '-extfile', extFile,
    ]);
  } catch (err) {
    if (owned) await rm(dir, { recursive: true, force: true });
    unregister();
    throw err;
  }
  return {
    dir,
    caFile,
    caKeyFile,
    certFile,
    keyFile,
    cleanup: async () => {
      unregister();
      if (owned) await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Self-signed EC P-256 certificate and key for signing ES256 tokens (x5c = this cert). */
export async function generateSigningCert(opts: { dir?: string; cn?: string } = {}): Promise<SigningCert> {
  const dir = opts.dir ?? (await makeDir('modctl-jwtkey-'));
  const owned = opts.dir === undefined;
  const unregister = owned ? removeOnExit(dir) : () => undefined;
  const certFile = join(dir, 'token-cert.pem');
  const keyFile = join(dir, 'token-key.pem');
  try {
    await runOpenssl([
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', `/CN=${opts.cn ?? 'modctl test token issuer'}`,
    ]);
  } catch (err) {
    if (owned) await rm(dir, { recursive: true, force: true });
    unregister();
    throw err;
  }
  return {
    dir,
    certFile,
    keyFile,
    cleanup: async () => {
      unregister();
      if (owned) await rm(dir, { recursive: true, force: true });
    },
  };
}
