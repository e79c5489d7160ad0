import { copyFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Options, execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { list, service } from '../support/objects.js';
import { node24 } from './node24.js';

// The esbuild bundle, alone, under Node 24: what the image runs (/usr/local/lib/switchboard/switchboard.mjs with
// no node_modules). The bundle is copied to an empty temporary directory so that nothing can resolve from the
// repository's node_modules.
const root = fileURLToPath(new URL('../..', import.meta.url));
let node = '';
let dir = '';
let bundle = '';

beforeAll(async () => {
  node = await node24();
  await execa('npm', ['run', '--silent', 'bundle'], { cwd: root });
  dir = await mkdtemp(join(tmpdir(), 'switchboard-smoke-'));
  bundle = join(dir, 'switchboard.mjs');
  await copyFile(join(root, 'dist', 'switchboard.mjs'), bundle);
}, 300_000);

afterAll(async () => {
  if (dir !== '') await rm(dir, { recursive: true, force: true });
});

/** Runs the bundle under Node 24 from the empty directory; stdout is kept byte for byte. */
const run = (args: string[], options: Options = {}) =>
  execa(node, [bundle, ...args], { cwd: dir, reject: false, stripFinalNewline: false, ...options });

describe('bundle under Node 24', () => {
  it('uses Node 24', async () => {
    const r = await execa(node, ['-p', 'process.versions.node']);
    expect(r.stdout).toMatch(/^24\./);
  });

  it('prints help with exit 0', async () => {
    const r = await run(['--help']);
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain('Usage: switchboard');
    expect(r.stdout).toMatch(/^\s+compile\b/m);
  });

  it('compiles the web example to exactly the golden ruleset', async () => {
    const r = await run([
      'compile', '-f', join(root, 'rules/examples/web.yaml'), '--node-name', 'node-a', '--cluster-cidr', '10.244.0.0/16',
    ]);
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe(await readFile(join(root, 'rules/golden/iptables/web.rules'), 'utf8'));
  });

  it('exits 2 on bad input, naming the object and field', async () => {
    const input = list([service({ namespace: 'shop', name: 'bad', clusterIP: '10.96.0.2', ports: [{ port: 70000 }] })]);
    const r = await run(['compile', '-f', '-', '--node-name', 'n1'], { input });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain('Service shop/bad: spec.ports[0].port: 70000 is out of range 1-65535');
  });

  it('exits 2 on a usage error', async () => {
    const r = await run(['compile', '-f', '-', '--cluster-cidr', '10.244.0.1/16'], { input: '' });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/--cluster-cidr: .*not a valid IPv4 CIDR/);
  });

  // `run --dry-run` against the test API server (test/apiserver/) goes here: start the server, then
  // run(['run', '--dry-run', '--kubeconfig', <its kubeconfig>, '--node-name', 'node-a', ...]) and check the
  // first sync's output and /healthz, then stop both.
});
