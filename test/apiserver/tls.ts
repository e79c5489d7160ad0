import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface TestCertificates {
  readonly caPem: string;
  readonly certPem: string;
  readonly keyPem: string;
}

async function openssl(args: readonly string[], cwd: string): Promise<void> {
  try {
    await run('openssl', args, { cwd, timeout: 30_000 });
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: string };
    if (err.code === 'ENOENT') {
      throw new Error('test apiserver TLS needs the openssl CLI on PATH (Debian package "openssl")', { cause: e });
    }
    throw new Error(`openssl ${args.join(' ')} failed: ${err.stderr ?? err.message}`, { cause: e });
  }
}

/**
 * A throw-away CA and a server certificate signed by it for 127.0.0.1, localhost and `extraSans`
 * (IPs or DNS names), made with the openssl CLI. P-256 keys: quick to generate, accepted by Node and Go.
 */
export async function makeCertificates(extraSans: readonly string[] = []): Promise<TestCertificates> {
  const dir = await mkdtemp(join(tmpdir(), 'switchboard-apiserver-tls-'));
  try {
    const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
    await openssl(
      ['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=switchboard-test-ca',
        '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'],
      dir,
    );
    await openssl(['req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=switchboard-test-apiserver'], dir);
    const sans = ['127.0.0.1', 'localhost', ...extraSans].map((s) => (isIP(s) !== 0 ? `IP:${s}` : `DNS:${s}`));
    await writeFile(
      join(dir, 'ext.cnf'),
      `subjectAltName=${[...new Set(sans)].join(',')}\nbasicConstraints=CA:FALSE\n` +
        'keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n',
    );
    await openssl(
      ['x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt',
        '-days', '2', '-extfile', 'ext.cnf'],
      dir,
    );
    const [caPem, certPem, keyPem] = await Promise.all(
      ['ca.crt', 'server.crt', 'server.key'].map((f) => readFile(join(dir, f), 'utf8')),
    );
    if (caPem === undefined || certPem === undefined || keyPem === undefined) throw new Error('openssl produced no output files');
    return { caPem, certPem, keyPem };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
