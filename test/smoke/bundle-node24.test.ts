import { copyFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Options, execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestApiServer } from '../apiserver/server.js';
import { endpointSlice, list, service } from '../support/objects.js';
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

  it('runs the agent in dry-run mode against an HTTPS API server: list, watch, a partial sync, clean SIGTERM', async () => {
    const server = await TestApiServer.start({ tls: true, token: 'smoke' });
    try {
      const kubeconfig = join(dir, 'kubeconfig');
      await server.writeKubeconfig(kubeconfig);
      server.apply(service({ name: 'web', clusterIP: '10.96.0.10', ports: [{ name: 'http', port: 80, targetPort: 8080 }] }));
      server.apply(endpointSlice({ name: 'web-1', service: 'web', ports: [{ name: 'http', port: 8080 }], endpoints: [{ ip: '10.244.1.5' }] }));
      const agent = execa(node, [bundle, 'run', '--dry-run', '--kubeconfig', kubeconfig, '--node-name', 'node-a', '--min-sync-period', '0',
        '--healthz-bind-address', '127.0.0.1:0', '--metrics-bind-address', '127.0.0.1:0'], { cwd: dir, reject: false, buffer: true });
      let out = '';
      agent.stdout?.on('data', (c: Buffer) => (out += c.toString()));
      const until = async (test: () => boolean, what: string) => {
        for (let i = 0; i < 200 && !test(); i++) await new Promise((r) => setTimeout(r, 50));
        if (!test()) throw new Error(`timed out waiting for ${what}; stdout so far:\n${out}`);
      };
      await until(() => out.includes('--to-destination 10.244.1.5:8080'), 'the first full sync');
      server.apply(endpointSlice({ name: 'web-1', service: 'web', ports: [{ name: 'http', port: 8080 }], endpoints: [{ ip: '10.244.1.6' }] }));
      await until(() => out.includes('--to-destination 10.244.1.6:8080'), 'the partial sync');
      agent.kill('SIGTERM');
      const r = await agent;
      expect(r.exitCode).toBe(0);
      // Dual-stack (a dry run assumes both families): each family's syncs are headed apart; the partial one is IPv4's.
      expect(out.match(/^# switchboard dry-run sync \d+ \(IPv4\)/gm)).toHaveLength(2);
      expect(out.match(/^# switchboard dry-run sync \d+ \(IPv6\)/gm)).toHaveLength(1);
      expect(String(r.stderr)).toContain('"msg":"stopped"');
    } finally {
      await server.stop();
    }
  });
});
