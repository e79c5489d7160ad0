// Proves the kernel test lab itself: real namespaces, real packets, real netfilter, IPv4 and IPv6.
import { existsSync } from 'node:fs';
import { execa } from 'execa';
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { nftTable, resetNftables } from './helpers.js';
import {
  canonicalIPv6,
  createLab,
  listNamespaces,
  mirrorIPv6,
  requireKernelTestPrereqs,
  sweepStaleLabs,
  withLab,
  type Lab,
  type ProbeResult,
} from './lab/index.js';
import { startEchoServer } from './lab/processes.js';

const A = { name: 'a', ip: '10.244.1.2', tcpPorts: [8080], udpPorts: [8080] };
const B = { name: 'b', ip: '10.244.1.3', tcpPorts: [8080, 9090], udpPorts: [8080] };
const C = { name: 'c', ip: '10.244.2.7' }; // client only, no listeners
// An external client: outside the cluster CIDR, routed to the node like a client on the node's network.
const X = { name: 'x', ip: '192.168.50.2' };
// Their IPv6 addresses, as the lab derives them (mirrorIPv6) and as the echo servers report peers.
const A6 = 'fd00:10:244:1::2';
const B6 = 'fd00:10:244:1::3';
const C6 = 'fd00:10:244:2::7';
const X6 = 'fd00:192:168:50::2';
const NODE6 = 'fd00:10::10';

/** Root-namespace settings the lab must never change (it sets their per-namespace copies in its own). */
const ROOT_SYSCTLS = [
  'net.ipv4.ip_forward',
  'net.ipv4.icmp_ratelimit',
  'net.ipv6.icmp.ratelimit',
  'net.ipv6.conf.all.forwarding',
  'net.ipv6.conf.default.forwarding',
  'net.ipv6.conf.all.accept_dad',
  'net.ipv6.conf.default.accept_dad',
  'net.ipv6.conf.all.disable_ipv6',
  'net.ipv6.conf.default.disable_ipv6',
];
async function rootSysctls(): Promise<string> {
  return (await execa('sysctl', ROOT_SYSCTLS)).stdout;
}

const ownPrefix = `sbt${process.pid}-`;

function replies(results: ProbeResult[]) {
  return results.map((r) => {
    if (!r.ok) throw new Error(`probe failed: ${r.error} (all: ${JSON.stringify(results)})`);
    return r.reply;
  });
}

function errors(results: ProbeResult[]): string[] {
  return results.map((r) => (r.ok ? `ok:${r.reply.pod}` : r.error));
}

describe('kernel lab', () => {
  let lab: Lab;

  let rootBefore = '';

  beforeAll(async () => {
    requireKernelTestPrereqs();
    await sweepStaleLabs();
    rootBefore = await rootSysctls();
    lab = await createLab();
    await lab.addPod(A);
    await lab.addPod(B);
    await lab.addPod(C);
    await lab.addPod(X);
  });

  afterAll(async () => {
    await lab?.destroy();
  });

  /** Runs a test body with extra rules, always returning netfilter to empty afterwards. */
  async function withRules(rules: string, fn: () => Promise<void>, family: 'ipv4' | 'ipv6' = 'ipv4'): Promise<void> {
    await (family === 'ipv4' ? lab.iptablesRestore(rules) : lab.ip6tablesRestore(rules));
    try {
      await fn();
    } finally {
      await lab.resetNetfilter();
    }
  }

  it('builds the ptp topology', async () => {
    expect(lab.nodeNs).toMatch(new RegExp(`^${ownPrefix}\\d+-node$`));
    expect(lab.nodeIP).toBe('10.0.0.10');
    const routes = (await lab.exec('node', 'ip', ['-4', 'route', 'show'])).stdout;
    expect(routes).toContain('default dev eth0');
    expect(routes).toContain(`${A.ip} dev ${lab.pods.get('a')?.hostVeth ?? '?'}`);
    const podRoutes = (await lab.exec('a', 'ip', ['-4', 'route', 'show'])).stdout;
    expect(podRoutes).toContain('default via 10.0.0.10 dev eth0');
    const fwd = (await lab.exec('node', 'sysctl', ['-n', 'net.ipv4.ip_forward'])).stdout;
    expect(fwd).toBe('1');
    for (const p of lab.pods.values()) expect(p.hostVeth.length).toBeLessThanOrEqual(15);
  });

  it('IPv6 addresses mirror the IPv4 ones: a.b.c.d is fd00:a:b:c::d, in the form peers are reported in', () => {
    expect(lab.nodeIP6).toBe(NODE6);
    expect([...lab.pods.values()].map((p) => [p.name, p.ip6])).toEqual([
      ['a', A6],
      ['b', B6],
      ['c', C6],
      ['x', X6],
    ]);
    expect(mirrorIPv6('10.96.0.1')).toBe('fd00:10:96::1');
    expect(mirrorIPv6('10.244.0.5')).toBe('fd00:10:244::5');
    expect(mirrorIPv6('255.255.255.255')).toBe('fd00:255:255:255::255');
    expect(canonicalIPv6('FD00:0:0:ABCD:0:0:0:0042')).toBe('fd00:0:0:abcd::42');
    expect(() => mirrorIPv6('fd00::1')).toThrow(/not an IPv4/);
    expect(() => canonicalIPv6('::ffff:10.0.0.1')).toThrow(/not an IPv6/);
  });

  it('builds the ptp topology over IPv6 too: routes, forwarding on the node, no DAD, no tentative address', async () => {
    const routes = (await lab.exec('node', 'ip', ['-6', 'route', 'show'])).stdout;
    expect(routes).toMatch(/^default dev eth0 /m);
    expect(routes).toMatch(/^fd00:10::\/64 dev eth0 /m);
    expect(routes).toContain(`${A6} dev ${lab.pods.get('a')?.hostVeth ?? '?'} `);
    expect(routes).toContain(`${X6} dev ${lab.pods.get('x')?.hostVeth ?? '?'} `);
    const podRoutes = (await lab.exec('a', 'ip', ['-6', 'route', 'show'])).stdout;
    expect(podRoutes).toMatch(new RegExp(`^${NODE6} dev eth0 `, 'm'));
    expect(podRoutes).toMatch(new RegExp(`^default via ${NODE6} dev eth0 `, 'm'));
    expect((await lab.exec('a', 'ip', ['-6', '-o', 'addr', 'show', 'dev', 'eth0', 'scope', 'global'])).stdout).toContain(
      `inet6 ${A6}/128 `,
    );
    const sysctl = async (where: string, key: string) => (await lab.exec(where, 'sysctl', ['-n', key])).stdout;
    expect(await sysctl('node', 'net.ipv6.conf.all.forwarding')).toBe('1');
    expect(await sysctl('node', 'net.ipv6.conf.eth0.forwarding')).toBe('1');
    expect(await sysctl('a', 'net.ipv6.conf.all.forwarding')).toBe('0');
    for (const where of ['node', 'a', 'x']) {
      expect(await sysctl(where, 'net.ipv6.conf.default.accept_dad')).toBe('0');
      expect(await sysctl(where, 'net.ipv6.conf.eth0.accept_dad')).toBe('0');
      expect(await sysctl(where, 'net.ipv6.icmp.ratelimit')).toBe('0');
      // Link-local addresses included: without DAD nothing is ever tentative (or failed).
      expect((await lab.exec(where, 'ip', ['-6', 'addr', 'show', 'tentative'])).stdout).toBe('');
      expect((await lab.exec(where, 'ip', ['-6', 'addr', 'show', 'dadfailed'])).stdout).toBe('');
    }
  });

  it('leaves the root namespace alone: its sysctls, links and routes know nothing of the lab', async () => {
    expect(await rootSysctls()).toBe(rootBefore);
    const links = (await execa('ip', ['-o', 'link', 'show'])).stdout;
    for (const p of lab.pods.values()) expect(links).not.toMatch(new RegExp(`^\\d+: ${p.hostVeth}[@:]`, 'm'));
    expect(links).not.toMatch(/^\d+: eth0sink[@:]/m);
    expect((await execa('ip', ['-6', 'route', 'show'])).stdout).not.toMatch(/fd00:10:244:|fd00:192:168:/);
    expect((await execa('ip', ['-4', 'route', 'show'])).stdout).not.toMatch(/10\.244\.1\.2|192\.168\.50\.2/);
  });

  it('pod to pod TCP reaches the right pod without NAT, fresh source port per probe', async () => {
    const r = replies(await lab.probe('c', { proto: 'tcp', ip: A.ip, port: 8080, count: 3 }));
    expect(r.map((x) => [x.pod, x.proto, x.port, x.peer])).toEqual(Array(3).fill(['a', 'tcp', 8080, C.ip]));
    expect(new Set(r.map((x) => x.peerPort)).size).toBe(3);
    const r2 = replies(await lab.probe('a', { proto: 'tcp', ip: B.ip, port: 9090 }));
    expect(r2[0]).toMatchObject({ pod: 'b', port: 9090, peer: A.ip });
  });

  it('pod to pod UDP reaches the right pod without NAT', async () => {
    const r = replies(await lab.probe('c', { proto: 'udp', ip: B.ip, port: 8080, count: 2 }));
    expect(r.map((x) => [x.pod, x.proto, x.port, x.peer])).toEqual(Array(2).fill(['b', 'udp', 8080, C.ip]));
  });

  it('node to pod works, peer is the node IP', async () => {
    const t = replies(await lab.probe('node', { proto: 'tcp', ip: A.ip, port: 8080 }));
    expect(t[0]).toMatchObject({ pod: 'a', peer: '10.0.0.10' });
    const u = replies(await lab.probe('node', { proto: 'udp', ip: B.ip, port: 8080 }));
    expect(u[0]).toMatchObject({ pod: 'b', proto: 'udp', peer: '10.0.0.10' });
  });

  it('IPv6 pod to pod, TCP and UDP, reaches the right pod without NAT', async () => {
    const t = replies(await lab.probe('c', { proto: 'tcp', ip: A6, port: 8080, count: 3 }));
    expect(t.map((x) => [x.pod, x.proto, x.port, x.peer])).toEqual(Array(3).fill(['a', 'tcp', 8080, C6]));
    expect(new Set(t.map((x) => x.peerPort)).size).toBe(3);
    const t2 = replies(await lab.probe('a', { proto: 'tcp', ip: B6, port: 9090 }));
    expect(t2[0]).toMatchObject({ pod: 'b', port: 9090, peer: A6 });
    const u = replies(await lab.probe('c', { proto: 'udp', ip: B6, port: 8080, count: 2 }));
    expect(u.map((x) => [x.pod, x.proto, x.port, x.peer])).toEqual(Array(2).fill(['b', 'udp', 8080, C6]));
  });

  it('IPv6 node to pod works, peer is the node IPv6 address', async () => {
    const t = replies(await lab.probe('node', { proto: 'tcp', ip: A6, port: 8080 }));
    expect(t[0]).toMatchObject({ pod: 'a', proto: 'tcp', peer: NODE6 });
    const u = replies(await lab.probe('node', { proto: 'udp', ip: B6, port: 8080 }));
    expect(u[0]).toMatchObject({ pod: 'b', proto: 'udp', peer: NODE6 });
  });

  it("an external client reaches a listener on the node's IPv6 (and IPv4) address", async () => {
    const server = await startEchoServer({ ns: lab.nodeNs, name: 'node', tcpPorts: [7070], udpPorts: [7070], holdMs: 0 });
    try {
      const t = replies(await lab.probe('x', { proto: 'tcp', ip: NODE6, port: 7070, count: 2 }));
      expect(t.map((r) => [r.pod, r.proto, r.port, r.peer])).toEqual(Array(2).fill(['node', 'tcp', 7070, X6]));
      const u = replies(await lab.probe('x', { proto: 'udp', ip: NODE6, port: 7070 }));
      expect(u[0]).toMatchObject({ pod: 'node', proto: 'udp', port: 7070, peer: X6 });
      const t4 = replies(await lab.probe('x', { proto: 'tcp', ip: lab.nodeIP, port: 7070 }));
      expect(t4[0]).toMatchObject({ pod: 'node', peer: X.ip });
    } finally {
      await server.stop();
    }
    expect(errors(await lab.probe('x', { proto: 'tcp', ip: NODE6, port: 7070 }))).toEqual(['refused']);
  });

  it('IPv6: closed ports are refused and unrouted destinations vanish into eth0', async () => {
    expect(errors(await lab.probe('c', { proto: 'tcp', ip: A6, port: 1234 }))).toEqual(['refused']);
    expect(errors(await lab.probe('c', { proto: 'udp', ip: A6, port: 1234 }))).toEqual(['refused']);
    // A would-be IPv6 ClusterIP and a documentation address: routed nowhere but the blackhole uplink.
    const t0 = Date.now();
    expect(errors(await lab.probe('c', { proto: 'tcp', ip: 'fd00:10:96::99', port: 80, timeoutMs: 300 }))).toEqual([
      'timeout',
    ]);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(300);
    expect(errors(await lab.probe('x', { proto: 'udp', ip: 'fd00:10:96::99', port: 53, timeoutMs: 300 }))).toEqual([
      'timeout',
    ]);
    expect(errors(await lab.probe('node', { proto: 'tcp', ip: '2001:db8::1', port: 80, timeoutMs: 300 }))).toEqual([
      'timeout',
    ]);
  });

  it('an explicit ip6 overrides the mirror and is kept in the form the echo servers report', async () => {
    const pod = await lab.addPod({ name: 'e6', ip: '10.244.4.4', ip6: 'FD00:0:0:ABCD:0:0:0:0042', tcpPorts: [8080] });
    try {
      expect(pod.ip6).toBe('fd00:0:0:abcd::42');
      expect(replies(await lab.probe('node', { proto: 'tcp', ip: pod.ip6, port: 8080 }))[0]).toMatchObject({
        pod: 'e6',
        peer: NODE6,
      });
      expect(replies(await lab.probe('e6', { proto: 'tcp', ip: A6, port: 8080 }))[0]).toMatchObject({
        pod: 'a',
        peer: pod.ip6,
      });
      // Not the mirror: nothing answers there.
      expect(errors(await lab.probe('node', { proto: 'tcp', ip: mirrorIPv6('10.244.4.4'), port: 8080, timeoutMs: 300 }))).toEqual([
        'timeout',
      ]);
    } finally {
      await lab.removePod('e6');
    }
    await expect(lab.addPod({ name: 'bad6', ip: '10.244.4.5', ip6: '10.244.4.5' })).rejects.toThrow(/not an IPv6/);
    expect(lab.pods.has('bad6')).toBe(false);
  });

  it('closed ports are refused and unknown destinations vanish into eth0', async () => {
    expect(errors(await lab.probe('c', { proto: 'tcp', ip: A.ip, port: 1234 }))).toEqual(['refused']);
    expect(errors(await lab.probe('c', { proto: 'udp', ip: A.ip, port: 1234 }))).toEqual(['refused']);
    expect(errors(await lab.probe('c', { proto: 'tcp', ip: '10.96.0.99', port: 80, timeoutMs: 300 }))).toEqual([
      'timeout',
    ]);
    expect(errors(await lab.probe('node', { proto: 'udp', ip: '192.0.2.1', port: 53, timeoutMs: 300 }))).toEqual([
      'timeout',
    ]);
  });

  it('a hand-written DNAT rule steers a VIP to a pod, from the node and from a pod', async () => {
    const dnat = `-d 10.96.0.1/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination ${A.ip}:8080`;
    await withRules(`*nat\n-A OUTPUT ${dnat}\n-A PREROUTING ${dnat}\nCOMMIT\n`, async () => {
      const before = await lab.iptablesSave('nat');
      expect(before).toContain(`-A PREROUTING ${dnat}`);
      expect(before).toContain(`-A OUTPUT ${dnat}`);

      const fromNode = replies(await lab.probe('node', { proto: 'tcp', ip: '10.96.0.1', port: 80 }));
      expect(fromNode[0]).toMatchObject({ pod: 'a', port: 8080, peer: '10.0.0.10' });
      const fromPod = replies(await lab.probe('c', { proto: 'tcp', ip: '10.96.0.1', port: 80, count: 2 }));
      expect(fromPod.map((x) => [x.pod, x.port, x.peer])).toEqual(Array(2).fill(['a', 8080, C.ip]));

      // Counters moved, but the normalised dump must not change.
      expect(await lab.iptablesSave('nat')).toBe(before);
      const ct = await lab.exec('node', 'conntrack', ['-L', '-p', 'tcp', '--orig-dst', '10.96.0.1']);
      expect(ct.stdout).toContain(`src=${A.ip}`);
    });
    // After reset the VIP goes nowhere again.
    expect(errors(await lab.probe('c', { proto: 'tcp', ip: '10.96.0.1', port: 80, timeoutMs: 300 }))).toEqual([
      'timeout',
    ]);
  });

  it('filter REJECT gives refused (TCP and UDP), DROP gives timeout', async () => {
    const rules = [
      '*filter',
      '-A FORWARD -d 10.96.0.2/32 -p tcp -m tcp --dport 80 -j REJECT',
      '-A FORWARD -d 10.96.0.2/32 -p udp -m udp --dport 80 -j REJECT',
      '-A FORWARD -d 10.96.0.3/32 -p tcp -m tcp --dport 80 -j DROP',
      '-A FORWARD -d 10.96.0.3/32 -p udp -m udp --dport 80 -j DROP',
      'COMMIT',
    ].join('\n');
    await withRules(rules, async () => {
      // 10 in a row: more than the kernel's default ICMP burst of 6, which the lab disables.
      expect(errors(await lab.probe('c', { proto: 'tcp', ip: '10.96.0.2', port: 80, count: 10 }))).toEqual(
        Array(10).fill('refused'),
      );
      expect(errors(await lab.probe('c', { proto: 'udp', ip: '10.96.0.2', port: 80, count: 10 }))).toEqual(
        Array(10).fill('refused'),
      );
      const t0 = Date.now();
      expect(errors(await lab.probe('c', { proto: 'tcp', ip: '10.96.0.3', port: 80, timeoutMs: 500 }))).toEqual([
        'timeout',
      ]);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(500);
      expect(errors(await lab.probe('c', { proto: 'udp', ip: '10.96.0.3', port: 80, timeoutMs: 500 }))).toEqual([
        'timeout',
      ]);
    });
  });

  it('an ip6tables DNAT rule steers an IPv6 VIP to a pod; resetNetfilter clears IPv6 rules and conntrack', async () => {
    const vip = 'fd00:10:96::1';
    const dnat = `-d ${vip}/128 -p tcp -m tcp --dport 80 -j DNAT --to-destination [${A6}]:8080`;
    await lab.ip6tablesRestore(`*nat\n-A OUTPUT ${dnat}\n-A PREROUTING ${dnat}\nCOMMIT\n`);
    try {
      const before = await lab.ip6tablesSave('nat');
      expect(before).toContain(`-A PREROUTING ${dnat}`);
      expect(before).toContain(`-A OUTPUT ${dnat}`);
      // The families' tables are separate.
      expect(await lab.iptablesSave('nat')).not.toContain(vip);

      const fromNode = replies(await lab.probe('node', { proto: 'tcp', ip: vip, port: 80 }));
      expect(fromNode[0]).toMatchObject({ pod: 'a', port: 8080, peer: NODE6 });
      const fromPod = replies(await lab.probe('c', { proto: 'tcp', ip: vip, port: 80, count: 2 }));
      expect(fromPod.map((x) => [x.pod, x.port, x.peer])).toEqual(Array(2).fill(['a', 8080, C6]));
      const fromOutside = replies(await lab.probe('x', { proto: 'tcp', ip: vip, port: 80 }));
      expect(fromOutside[0]).toMatchObject({ pod: 'a', peer: X6 });

      expect(await lab.ip6tablesSave('nat')).toBe(before);
      const ct = await lab.exec('node', 'conntrack', ['-L', '-f', 'ipv6', '-p', 'tcp', '--orig-dst', vip]);
      expect(ct.stdout).toContain(`src=${A6}`);
    } finally {
      await lab.resetNetfilter();
    }
    expect(await lab.ip6tablesSave('nat')).not.toContain(vip);
    expect((await lab.exec('node', 'conntrack', ['-L', '-f', 'ipv6'])).stdout).toBe('');
    expect(errors(await lab.probe('c', { proto: 'tcp', ip: vip, port: 80, timeoutMs: 300 }))).toEqual(['timeout']);
  });

  it('ip6tables: REJECT refuses UDP at once and TCP by the SYN retransmission; MASQUERADE shows the node IPv6', async () => {
    const rules = [
      '*filter',
      '-A FORWARD -d fd00:10:96::2/128 -p tcp -m tcp --dport 80 -j REJECT',
      '-A FORWARD -d fd00:10:96::2/128 -p udp -m udp --dport 80 -j REJECT',
      'COMMIT',
      '*nat',
      `-A POSTROUTING -d ${B6}/128 -j MASQUERADE`,
      'COMMIT',
    ].join('\n');
    await withRules(
      rules,
      async () => {
        // 10 in a row: more than the kernel's default ICMPv6 burst, which the lab disables.
        expect(errors(await lab.probe('c', { proto: 'udp', ip: 'fd00:10:96::2', port: 80, count: 10 }))).toEqual(
          Array(10).fill('refused'),
        );
        // The ICMPv6 error for the first SYN comes back while connect() still holds the socket (veth delivers
        // synchronously), and an IPv6 TCP socket without IPV6_RECVERR then only keeps it as a soft error; the
        // retransmitted SYN (after the 1 s initial RTO) is refused for good. IPv4 reports the first one.
        // So IPv6 TCP probes that expect a REJECT must wait past 1 s.
        expect(errors(await lab.probe('c', { proto: 'tcp', ip: 'fd00:10:96::2', port: 80, count: 2, timeoutMs: 2500 }))).toEqual(
          Array(2).fill('refused'),
        );
        const t = replies(await lab.probe('c', { proto: 'tcp', ip: B6, port: 8080 }));
        expect(t[0]).toMatchObject({ pod: 'b', peer: NODE6 });
        const u = replies(await lab.probe('x', { proto: 'udp', ip: B6, port: 8080 }));
        expect(u[0]).toMatchObject({ pod: 'b', proto: 'udp', peer: NODE6 });
        // IPv4 to the same pod is not masqueraded: the rule is IPv6 only.
        expect(replies(await lab.probe('c', { proto: 'tcp', ip: B.ip, port: 8080 }))[0]?.peer).toBe(C.ip);
      },
      'ipv6',
    );
    expect(replies(await lab.probe('c', { proto: 'tcp', ip: B6, port: 8080 }))[0]?.peer).toBe(C6);
  });

  it('the nftables helpers read and remove the ip6 family table as well as the ip one', async () => {
    await lab.exec('node', 'nft', ['add', 'table', 'ip6', 'kube-proxy']);
    try {
      expect(await nftTable(lab, 'ip6')).toMatch(/^table ip6 kube-proxy \{/);
      expect(await nftTable(lab)).toBe('');
      await lab.exec('node', 'nft', ['add', 'table', 'ip', 'kube-proxy']);
      expect(await nftTable(lab, 'ip')).toMatch(/^table ip kube-proxy \{/);
    } finally {
      await resetNftables(lab);
    }
    expect(await nftTable(lab, 'ip6')).toBe('');
    expect(await nftTable(lab, 'ip')).toBe('');
  });

  it('MASQUERADE in nat POSTROUTING makes the server see the node IP', async () => {
    await withRules(`*nat\n-A POSTROUTING -d ${B.ip}/32 -j MASQUERADE\nCOMMIT\n`, async () => {
      const t = replies(await lab.probe('c', { proto: 'tcp', ip: B.ip, port: 8080 }));
      expect(t[0]).toMatchObject({ pod: 'b', peer: '10.0.0.10' });
      const u = replies(await lab.probe('a', { proto: 'udp', ip: B.ip, port: 8080 }));
      expect(u[0]).toMatchObject({ pod: 'b', proto: 'udp', peer: '10.0.0.10' });
    });
    // Without the rule the real client IP is back.
    const t = replies(await lab.probe('c', { proto: 'tcp', ip: B.ip, port: 8080 }));
    expect(t[0]?.peer).toBe(C.ip);
  });

  it('stopPodServer / startPodServer toggle the listener', async () => {
    await lab.stopPodServer('a');
    expect(errors(await lab.probe('c', { proto: 'tcp', ip: A.ip, port: 8080 }))).toEqual(['refused']);
    await lab.startPodServer('a');
    expect(replies(await lab.probe('c', { proto: 'tcp', ip: A.ip, port: 8080 }))[0]?.pod).toBe('a');
  });

  it('holdMs keeps TCP connections open', async () => {
    await lab.addPod({ name: 'slow', ip: '10.244.3.9', tcpPorts: [8080], holdMs: 5000 });
    try {
      // probe.mjs returns on the reply line, so this is fast despite the hold...
      const r = replies(await lab.probe('c', { proto: 'tcp', ip: '10.244.3.9', port: 8080 }));
      expect(r[0]?.pod).toBe('slow');
      // ...while a raw client sees the server keep the socket open until the hold ends.
      const res = await lab.exec(
        'c',
        process.execPath,
        [
          '-e',
          `const s=require('net').connect(8080,'10.244.3.9');s.resume();` +
            `const t=setTimeout(()=>{console.log('open');process.exit(0)},800);` +
            `s.on('end',()=>{clearTimeout(t);console.log('ended');process.exit(0)})`,
        ],
      );
      expect(res.stdout).toBe('open');
    } finally {
      await lab.removePod('slow');
    }
    expect(lab.pods.has('slow')).toBe(false);
    expect(await listNamespaces()).not.toContain(`${lab.nodeNs.replace(/-node$/, '')}-slow`);
    // Its /32 and /128 routes went with the veth, so the addresses now fall into the blackhole.
    expect(errors(await lab.probe('c', { proto: 'tcp', ip: '10.244.3.9', port: 8080, timeoutMs: 300 }))).toEqual([
      'timeout',
    ]);
    expect(errors(await lab.probe('c', { proto: 'tcp', ip: 'fd00:10:244:3::9', port: 8080, timeoutMs: 300 }))).toEqual([
      'timeout',
    ]);
    expect((await lab.exec('node', 'ip', ['-6', 'route', 'show'])).stdout).not.toContain('fd00:10:244:3::9');
  });

  it('iptablesSave and ip6tablesSave normalise comments and counters', async () => {
    for (const dump of [await lab.iptablesSave(), await lab.ip6tablesSave()]) {
      expect(dump).toContain('*filter');
      expect(dump).not.toMatch(/^#/m);
      expect(dump).not.toMatch(/\[[1-9]\d*:\d+\]|\[\d+:[1-9]\d*\]/);
    }
  });
});

describe('lab cleanup', () => {
  beforeAll(() => {
    requireKernelTestPrereqs();
  });

  it('destroy() kills servers and leaves no sbt<pid>- namespace behind; it is idempotent', async () => {
    const lab = await createLab({ nodeIP: '10.1.0.1' });
    await lab.addPod({ name: 'x', ip: '10.245.0.2', tcpPorts: [80] });
    let pids: number[] = [];
    try {
      const nsPids = await execa('ip', ['netns', 'pids', `${lab.nodeNs.replace(/-node$/, '')}-x`]);
      pids = nsPids.stdout.split(/\s+/).filter((p) => p !== '').map(Number);
      expect(pids.length).toBeGreaterThan(0);
      expect(replies(await lab.probe('node', { proto: 'tcp', ip: '10.245.0.2', port: 80 }))[0]?.peer).toBe('10.1.0.1');
      // The IPv6 addresses follow nodeIP and the pod's ip.
      expect(lab.nodeIP6).toBe('fd00:10:1::1');
      expect(replies(await lab.probe('node', { proto: 'tcp', ip: 'fd00:10:245::2', port: 80 }))[0]?.peer).toBe('fd00:10:1::1');
    } finally {
      await lab.destroy();
    }
    await lab.destroy();
    expect((await listNamespaces()).filter((n) => n.startsWith(lab.nodeNs.replace(/node$/, '')))).toEqual([]);
    for (const pid of pids) expect(existsSync(`/proc/${pid}`)).toBe(false);
    await expect(lab.addPod({ name: 'y', ip: '10.245.0.3' })).rejects.toThrow(/destroyed/);
  });

  it('withLab destroys even when the body throws', async () => {
    let ns = '';
    await expect(
      withLab(async (lab) => {
        ns = lab.nodeNs;
        await lab.addPod({ name: 'z', ip: '10.246.0.2' });
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    const left = await listNamespaces();
    expect(left).not.toContain(ns);
    expect(left).not.toContain(ns.replace(/node$/, 'z'));
  });

  it('sweepStaleLabs removes namespaces of dead pids and kills what runs in them', async () => {
    const dead = execa('true');
    const deadPid = dead.pid;
    await dead;
    if (deadPid === undefined || existsSync(`/proc/${deadPid}`)) throw new Error('could not get a dead pid');
    const stale = `sbt${deadPid}-1-node`;
    await execa('ip', ['netns', 'add', stale]);
    const sleeper = execa('ip', ['netns', 'exec', stale, 'sleep', '60'], { reject: false });
    try {
      await new Promise((r) => setTimeout(r, 200));
      const swept = await sweepStaleLabs();
      expect(swept).toContain(stale);
      expect(await listNamespaces()).not.toContain(stale);
      const res = await sleeper;
      expect(res.signal).toBe('SIGTERM');
    } finally {
      sleeper.kill('SIGKILL');
      await execa('ip', ['netns', 'del', stale], { reject: false });
    }
  });

  it('no namespace of this process survives', async () => {
    expect((await listNamespaces()).filter((n) => n.startsWith(ownPrefix))).toEqual([]);
  });
});
