import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { list, service } from '../support/objects.js';

// The CLI is a contract other people's tests call: names, exit codes and messages are checked here.
const root = fileURLToPath(new URL('../..', import.meta.url));
const run = (args: string[], input?: string) =>
  execa(process.execPath, [`${root}dist/cli/main.js`, ...args], { cwd: root, reject: false, ...(input !== undefined ? { input } : {}) });

describe('switchboard compile', () => {
  it('reads a List from stdin with -f -', async () => {
    const input = list([service({ name: 'a', clusterIP: '10.96.0.1', ports: [{ port: 80 }] })]);
    const r = await run(['compile', '-f', '-', '--node-name', 'n1'], input);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain('"default/a has no endpoints"');
  });

  it('exits 0 without a stack trace when its reader stops early (compile | head)', async () => {
    const services = Array.from({ length: 3000 }, (_, i) => service({ name: `s${i}`, clusterIP: `10.96.${i >> 8}.${i & 255}`, ports: [{ port: 80 }] }));
    // The shell pipes into a reader that takes one line and closes: the CLI's writes then fail with EPIPE.
    const r = await execa('sh', ['-c', `node ${root}dist/cli/main.js compile -f - --node-name n1 | head -n 1`], { input: list(services), reject: false });
    expect(r.stdout).toBe('*filter');
    expect(r.stderr).toBe('');
  });

  it('reads several -f files', async () => {
    const r = await run(['compile', '-f', 'rules/examples/web.yaml', '-f', 'rules/examples/features.yaml', '--node-name', 'node-a']);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain('default/web:http cluster IP');
    expect(r.stdout).toContain('shop/sticky:http cluster IP');
  });

  it('exits 2 naming file, object and field for a bad object, and still prints the rest', async () => {
    const input = list([
      service({ name: 'good', clusterIP: '10.96.0.1', ports: [{ port: 80 }] }),
      service({ namespace: 'shop', name: 'bad', clusterIP: '10.96.0.2', ports: [{ port: 70000 }] }),
    ]);
    const r = await run(['compile', '-f', '-', '--node-name', 'n1'], input);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain('<stdin> (document 1, items[1]): Service shop/bad: spec.ports[0].port: 70000 is out of range 1-65535');
    expect(r.stdout).toContain('default/good has no endpoints');
  });

  it('exits 2 for a missing file, naming it', async () => {
    const r = await run(['compile', '-f', 'no/such.yaml', '--node-name', 'n1']);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain('no/such.yaml: cannot read: ENOENT');
  });

  it.each([
    [['compile', '--node-name', 'n1'], /at least one -f FILE/],
    [['compile', '-f', '-', '--cluster-cidr', '10.244.0.1/16'], /--cluster-cidr: .*not a valid IPv4 CIDR/],
    [['compile', '-f', '-', '--cluster-cidr', '10.0.0.0/8,10.1.0.0/16'], /at most one IPv4 CIDR/],
    [['compile', '-f', '-', '--backend', 'bpf'], /Allowed choices are iptables, ipvs, nftables/],
    [['compile', '-f', '-', '--backend', 'ipvs', '--ipvs-scheduler', 'fastest'], /Allowed choices are rr, wrr, lc/],
    [['compile', '-f', '-', '--node-ip', 'nope'], /--node-ip: "nope" is not an IP address/],
    [['frobnicate'], /unknown command/],
  ])('exits 2 on usage error %j', async (args, message) => {
    const r = await run(args, '');
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(message);
  });

  it('compiles for --backend nftables: an nft -f transaction on our table', async () => {
    const r = await run(['compile', '-f', '-', '--node-name', 'n1', '--backend', 'nftables'], '');
    expect(r.exitCode).toBe(0);
    expect(r.stdout.split('\n')[0]).toBe('add table ip kube-proxy { comment "rules for kube-proxy" ; }');
  });

  it('accepts one CIDR per family', async () => {
    const r = await run(['compile', '-f', '-', '--node-name', 'n1', '--cluster-cidr', '10.244.0.0/16,fd00:10::/64'], '');
    expect(r.exitCode).toBe(0);
  });
});
