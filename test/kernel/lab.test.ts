// Proves the kernel test lab itself: real namespaces, real packets, real netfilter.
import { existsSync } from 'node:fs';
import { execa } from 'execa';
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import {
  createLab,
  listNamespaces,
  requireKernelTestPrereqs,
  sweepStaleLabs,
  withLab,
  type Lab,
  type ProbeResult,
} from './lab/index.js';

const A = { name: 'a', ip: '10.244.1.2', tcpPorts: [8080], udpPorts: [8080] };
const B = { name: 'b', ip: '10.244.1.3', tcpPorts: [8080, 9090], udpPorts: [8080] };
const C = { name: 'c', ip: '10.244.2.7' }; // client only, no listeners

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

  beforeAll(async () => {
    requireKernelTestPrereqs();
    await sweepStaleLabs();
    lab = await createLab();
    await lab.addPod(A);
    await lab.addPod(B);
    await lab.addPod(C);
  });

  afterAll(async () => {
    await lab?.destroy();
  });

  /** Runs a test body with extra rules, always returning netfilter to empty afterwards. */
  async function withRules(rules: string, fn: () => Promise<void>): Promise<void> {
    await lab.iptablesRestore(rules);
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
    // Its /32 route went with the veth, so the address now falls into the blackhole.
    expect(errors(await lab.probe('c', { proto: 'tcp', ip: '10.244.3.9', port: 8080, timeoutMs: 300 }))).toEqual([
      'timeout',
    ]);
  });

  it('iptablesSave normalises comments and counters', async () => {
    const dump = await lab.iptablesSave();
    expect(dump).not.toMatch(/^#/m);
    expect(dump).not.toMatch(/\[[1-9]\d*:\d+\]|\[\d+:[1-9]\d*\]/);
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
