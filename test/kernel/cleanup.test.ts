// `switchboard cleanup` on a real kernel: after compile --apply and cleanup the node's tables are exactly what
// they were before Switchboard ran (other agents' chains and rules included), a second cleanup is a no-op,
// and ClusterIP traffic is no longer DNAT'ed.
import { beforeAll, describe, expect, it } from 'vitest';
import { endpointSlice, service, type K8sObject } from '../support/objects.js';
import { CLI, NODE_NAME, TempFiles, applyObjects, flushConntrack, outcomes, podsHit, useKernelLab } from './helpers.js';
import { type ExecResult, type Lab, normaliseIptablesSave } from './lab/index.js';

const A = { name: 'a', ip: '10.244.1.2', tcpPorts: [8080] };
const C = { name: 'c', ip: '10.244.2.2' }; // client

const WEB_IP = '10.96.3.1';
const EMPTY_IP = '10.96.3.2';
const OBJECTS: K8sObject[] = [
  service({ name: 'web', clusterIP: WEB_IP, ports: [{ name: 'http', port: 80, targetPort: 8080 }] }),
  endpointSlice({ name: 'web-1', service: 'web', ports: [{ name: 'http', port: 8080 }], endpoints: [{ ip: A.ip, nodeName: NODE_NAME }] }),
  // No endpoints: a filter REJECT rule, so cleanup has work in filter KUBE-SERVICES too.
  service({ name: 'empty', clusterIP: EMPTY_IP, ports: [{ name: 'http', port: 80, targetPort: 8080 }] }),
];

/** A CNI's chain hooked into PREROUTING and FORWARD, kubelet's chains and jumps, and a foreign nat rule. */
// kubelet's chains as a current kubelet leaves them; KUBE-FIREWALL's rule is the one kube-proxy (and Switchboard,
// with localhost NodePorts) writes there too, so a sync rewrites it unchanged and cleanup leaves it, as upstream.
const FOREIGN = `*mangle
:CNI-TEST - [0:0]
:KUBE-IPTABLES-HINT - [0:0]
:KUBE-KUBELET-CANARY - [0:0]
-A PREROUTING -j CNI-TEST
-A FORWARD -j CNI-TEST
-A CNI-TEST -s 10.244.0.0/16 -j MARK --set-xmark 0x1/0x1
COMMIT
*filter
:KUBE-FIREWALL - [0:0]
:KUBE-KUBELET-CANARY - [0:0]
-A INPUT -j KUBE-FIREWALL
-A OUTPUT -j KUBE-FIREWALL
-A FORWARD -s 192.0.2.0/24 -j ACCEPT
-A KUBE-FIREWALL -m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP
COMMIT
*nat
:KUBE-MARK-DROP - [0:0]
:KUBE-KUBELET-CANARY - [0:0]
-A PREROUTING -d 198.51.100.7/32 -j RETURN
-A KUBE-MARK-DROP -j MARK --set-xmark 0x8000/0x8000
COMMIT
`;

function cleanup(lab: Lab, ...args: string[]): Promise<ExecResult> {
  return lab.exec('node', process.execPath, [CLI, 'cleanup', ...args], { reject: false });
}

function expectExit0(r: ExecResult): void {
  if (r.exitCode !== 0) throw new Error(`cleanup exited ${String(r.exitCode)}\nstderr: ${r.stderr}\nstdout: ${r.stdout}`);
}

describe('switchboard cleanup on a real kernel', () => {
  const ctx = useKernelLab([A, C]);
  let lab: Lab;
  let files: TempFiles;
  beforeAll(() => {
    ({ lab, files } = ctx);
  });

  it('restores the pre-Switchboard ruleset exactly, is idempotent, and stops the DNAT', async () => {
    await lab.iptablesRestore(FOREIGN);
    const before = await lab.iptablesSave();

    await applyObjects(lab, files, OBJECTS);
    expect(podsHit(await lab.probe('c', { proto: 'tcp', ip: WEB_IP, port: 80 }))).toEqual(['a']);
    const applied = await lab.iptablesSave();
    expect(applied).toContain(':KUBE-SVC-');
    expect(applied).toContain('-j KUBE-PROXY-FIREWALL');

    // A dry run prints the payload and changes nothing.
    const dry = await cleanup(lab, '--dry-run');
    expectExit0(dry);
    expect(dry.stdout).toContain('-X KUBE-SERVICES');
    expect(dry.stdout).toContain('-D PREROUTING ');
    expect(dry.stderr).toMatch(/^cleanup \(dry run\): IPv4: would remove /m);
    expect(await lab.iptablesSave()).toBe(applied);

    const first = await cleanup(lab);
    expectExit0(first);
    expect(first.stderr).toMatch(/IPv4: removed filter 6 chains, nat \d+ chains, mangle 1 chain, 12 jumps from built-in chains/);
    expect(await lab.iptablesSave()).toBe(before);

    const second = await cleanup(lab);
    expectExit0(second);
    expect(second.stderr).toContain('IPv4: nothing to remove');
    expect(await lab.iptablesSave()).toBe(before);

    await flushConntrack(lab);
    // Without the DNAT the packet is routed towards the node's blackhole uplink: nobody answers.
    expect(outcomes(await lab.probe('c', { proto: 'tcp', ip: WEB_IP, port: 80, timeoutMs: 300 }))).toEqual(['timeout']);
  });

  it('deletes the nftables backend\'s table and nothing else, and stops its DNAT', async () => {
    const nft = (args: string[], input?: string) => lab.exec('node', 'nft', args, { reject: false, ...(input !== undefined ? { input } : {}) });
    // Another agent's nftables table, which must survive.
    const foreign = await nft(['-f', '-'], 'add table ip cni-test\nadd chain ip cni-test c\nadd rule ip cni-test c ip daddr 198.51.100.7 counter\n');
    if (foreign.exitCode !== 0) throw new Error(`nft -f failed: ${foreign.stderr}`);
    // iptables-nft's own tables (filter, nat, …) are listed too; only these two matter here.
    const tables = async () => (await nft(['list', 'tables'])).stdout.split('\n').filter((l) => /cni-test|kube-proxy/.test(l)).sort();
    await applyObjects(lab, files, OBJECTS, { backend: 'nftables' });
    expect(podsHit(await lab.probe('c', { proto: 'tcp', ip: WEB_IP, port: 80 }))).toEqual(['a']);
    expect(await tables()).toEqual(['table ip cni-test', 'table ip kube-proxy']);

    const dry = await cleanup(lab, '--dry-run');
    expectExit0(dry);
    expect(dry.stdout).toContain('#### nft -f -\ndelete table ip kube-proxy');
    expect(dry.stderr).toContain('nftables: would delete table ip kube-proxy');
    expect(await tables()).toEqual(['table ip cni-test', 'table ip kube-proxy']);

    const first = await cleanup(lab);
    expectExit0(first);
    expect(first.stderr).toContain('nftables: deleted table ip kube-proxy');
    expect(await tables()).toEqual(['table ip cni-test']);
    expect((await nft(['list', 'table', 'ip', 'cni-test'])).stdout).toContain('ip daddr 198.51.100.7 counter');
    const second = await cleanup(lab);
    expectExit0(second);
    expect(second.stderr).toContain('nftables: nothing to remove');

    await flushConntrack(lab);
    expect(outcomes(await lab.probe('c', { proto: 'tcp', ip: WEB_IP, port: 80, timeoutMs: 300 }))).toEqual(['timeout']);
    await nft(['delete', 'table', 'ip', 'cni-test']);
  });

  it('flushes but keeps a chain of ours that another agent still jumps to', async () => {
    await applyObjects(lab, files, OBJECTS);
    await lab.iptablesRestore(`*nat\n:CNI-MASQ - [0:0]\n-A CNI-MASQ -s 10.244.9.0/24 -j KUBE-MARK-MASQ\nCOMMIT\n`);

    const first = await cleanup(lab);
    expectExit0(first);
    expect(first.stderr).toContain("flushed but kept (another agent's chain jumps to them): nat/KUBE-MARK-MASQ");
    const nat = await lab.iptablesSave('nat');
    expect(nat.split('\n').filter((l) => /KUBE-/.test(l))).toEqual([
      ':KUBE-MARK-MASQ - [0:0]',
      '-A CNI-MASQ -s 10.244.9.0/24 -j KUBE-MARK-MASQ',
    ]);

    const second = await cleanup(lab);
    expectExit0(second);
    expect(second.stderr).toContain('IPv4: nothing to remove');
    expect(await lab.iptablesSave('nat')).toBe(nat);
  });

  it('cleans IPv6 too, leaving foreign IPv6 rules alone', async () => {
    const ip6 = (args: string[], input?: string) =>
      lab.exec('node', args[0]!, args.slice(1), { reject: false, ...(input !== undefined ? { input } : {}) });
    const probe = await ip6(['ip6tables-save']);
    if (probe.exitCode !== 0) throw new Error(`ip6tables-save does not work in the lab (needed for this test): ${probe.stderr}`);
    const foreign = `*nat\n:CNI-TEST6 - [0:0]\n-A PREROUTING -j CNI-TEST6\n-A CNI-TEST6 -d fd00::1/128 -j RETURN\nCOMMIT\n`;
    const ours =
      `*nat\n:KUBE-SERVICES - [0:0]\n:KUBE-SVC-ABCDEFGHIJKLMNOP - [0:0]\n:KUBE-PROXY-CANARY - [0:0]\n` +
      `-I PREROUTING 1 -m comment --comment "kubernetes service portals" -j KUBE-SERVICES\n` +
      `-A KUBE-SERVICES -d fd00::10/128 -p tcp -m tcp --dport 80 -j KUBE-SVC-ABCDEFGHIJKLMNOP\nCOMMIT\n`;
    for (const payload of [foreign, ours]) {
      const r = await ip6(['ip6tables-restore', '--noflush'], payload);
      if (r.exitCode !== 0) throw new Error(`ip6tables-restore failed: ${r.stderr}\n${payload}`);
    }
    const saveNat6 = async () => normaliseIptablesSave((await ip6(['ip6tables-save', '-t', 'nat'])).stdout);
    const applied = await saveNat6();
    expect(applied).toContain('-j KUBE-SERVICES');

    const r = await cleanup(lab);
    expectExit0(r);
    expect(r.stderr).toContain('IPv6: removed nat 3 chains, 1 jump from built-in chains');
    const after = await saveNat6();
    expect(after).not.toContain('KUBE-');
    expect(after).toContain('-A PREROUTING -j CNI-TEST6');
    expect(after).toContain('-A CNI-TEST6 -d fd00::1/128 -j RETURN');

    // Leave IPv6 as the lab's reset found it: resetNetfilter only knows IPv4.
    const reset = await ip6(['ip6tables-restore'], `*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n`);
    expect(reset.exitCode).toBe(0);
  });
});
