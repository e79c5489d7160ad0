// Runs inside the test VM (see test/vm/vm.ts): proves the guest is the Debian 6.1 kernel with working IPVS, and
// that the kernel lab (test/kernel/lab) runs there dual-stack, IPv6 packets included.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { release } from 'node:os';
import { describe, expect, it } from 'vitest';
import { requireKernelTestPrereqs, withLab, type ProbeResult } from '../kernel/lab/index.js';

const outcomes = (rs: readonly ProbeResult[]): string[] => rs.map((r) => (r.ok ? `${r.reply.pod} ${r.reply.proto} ${r.reply.peer}` : r.error));

describe('the test VM guest', () => {
  it('runs the cached Debian 6.1 kernel', () => {
    expect(release()).toMatch(/^6\.1\./);
  });

  it('has IPVS: ipvsadm -Ln lists the (empty) virtual server table', () => {
    const out = execFileSync('ipvsadm', ['-Ln'], { encoding: 'utf8' });
    expect(out).toMatch(/^IP Virtual Server version \d+\.\d+\.\d+/);
    expect(readFileSync('/proc/net/ip_vs', 'utf8')).toContain('IP Virtual Server version');
  });

  it('runs the dual-stack kernel lab: IPv6 pod to pod and node to pod, unrouted IPv6 times out', async () => {
    requireKernelTestPrereqs();
    await withLab(async (lab) => {
      const a = await lab.addPod({ name: 'a', ip: '10.244.1.2', tcpPorts: [8080], udpPorts: [8080] });
      const c = await lab.addPod({ name: 'c', ip: '10.244.2.2' });
      expect([a.ip6, c.ip6, lab.nodeIP6]).toEqual(['fd00:10:244:1::2', 'fd00:10:244:2::2', 'fd00:10::10']);
      expect(outcomes(await lab.probe('c', { proto: 'tcp', ip: a.ip6, port: 8080 }))).toEqual([`a tcp ${c.ip6}`]);
      expect(outcomes(await lab.probe('c', { proto: 'udp', ip: a.ip6, port: 8080 }))).toEqual([`a udp ${c.ip6}`]);
      expect(outcomes(await lab.probe('node', { proto: 'tcp', ip: a.ip6, port: 8080 }))).toEqual([`a tcp ${lab.nodeIP6}`]);
      expect(outcomes(await lab.probe('c', { proto: 'tcp', ip: a.ip, port: 8080 }))).toEqual([`a tcp ${c.ip}`]);
      expect(outcomes(await lab.probe('c', { proto: 'tcp', ip: 'fd00:10:96::1', port: 80, timeoutMs: 500 }))).toEqual(['timeout']);
      // ip6tables (nf_tables) works in the guest's lab namespaces as iptables does.
      await lab.ip6tablesRestore(`*nat\n-A OUTPUT -d fd00:10:96::1/128 -p tcp -j DNAT --to-destination [${a.ip6}]:8080\nCOMMIT\n`);
      expect(outcomes(await lab.probe('node', { proto: 'tcp', ip: 'fd00:10:96::1', port: 80 }))).toEqual([`a tcp ${lab.nodeIP6}`]);
    });
  });
});
