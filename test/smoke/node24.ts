import { access, constants, mkdir, mkdtemp, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';

/**
 * A Node 24 binary for the bundle smoke test, the Node the image runs.
 *
 * Taken from the npm registry's node-linux-<arch> package with `npm pack` + `tar`, never `npm install`: that
 * package declares `bin: node`, so as a (dev)dependency it would shadow `node` for every npm script. Nothing
 * is added to package.json; the binary is cached under node_modules/.cache/node24/<version>/ (gone with
 * node_modules, so `npm ci` starts clean). Pinned, so a run is reproducible; bump with the image's Node.
 * SWITCHBOARD_NODE24=/path/to/node uses a local Node 24 instead (no registry access needed).
 */
export const NODE24_VERSION = '24.9.0';

const root = fileURLToPath(new URL('../..', import.meta.url));
const cacheDir = join(root, 'node_modules', '.cache', 'node24');

export async function node24(): Promise<string> {
  const local = process.env['SWITCHBOARD_NODE24'];
  if (local !== undefined && local !== '') return checked(local, 'SWITCHBOARD_NODE24');
  if (process.versions.node.startsWith('24.')) return process.execPath;

  const target = join(cacheDir, NODE24_VERSION);
  const binary = join(target, 'bin', 'node');
  if (await executable(binary)) return checked(binary, 'the cache');

  const pkg = `node-${process.platform}-${process.arch}@${NODE24_VERSION}`;
  await mkdir(cacheDir, { recursive: true });
  // Unpack in a private directory and rename into place, so concurrent runs never see half a binary.
  const work = await mkdtemp(join(cacheDir, '.download-'));
  try {
    const packed = await execa('npm', ['pack', pkg, '--pack-destination', work, '--silent'], { cwd: work, reject: false, timeout: 300_000 });
    const tarball = (await readdir(work)).find((f) => f.endsWith('.tgz'));
    if (packed.exitCode !== 0 || tarball === undefined) {
      throw new Error(`npm pack ${pkg} failed (exit ${String(packed.exitCode)}): ${packed.stderr.trim().split('\n').slice(-3).join(' | ')}`);
    }
    await execa('tar', ['-xzf', join(work, tarball), '-C', work, 'package/bin/node']);
    await rename(join(work, 'package'), target).catch(async (e: unknown) => {
      if (!(await executable(binary))) throw e; // another run won the race: use its copy
    });
  } catch (e) {
    throw new Error(
      `cannot obtain Node ${NODE24_VERSION} for the bundle smoke test (${pkg} from the npm registry): ` +
        `${e instanceof Error ? e.message : String(e)}. Set SWITCHBOARD_NODE24 to a Node 24 binary to use a local one.`,
    );
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  return checked(binary, pkg);
}

async function executable(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

async function checked(binary: string, source: string): Promise<string> {
  const { stdout, exitCode } = await execa(binary, ['--version'], { reject: false });
  if (exitCode !== 0 || !stdout.startsWith('v24.')) {
    throw new Error(`${binary} (from ${source}) is not a working Node 24: --version printed ${JSON.stringify(stdout)}, exit ${String(exitCode)}`);
  }
  return binary;
}
