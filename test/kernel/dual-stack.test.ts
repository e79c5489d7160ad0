// Real packets over IPv6 and both families at once: a dual-stack Service reached over each family, each to its own
// endpoints, with nothing leaking across; IPv6 ClusterIP TCP and UDP, masquerading from the node, REJECT without
// endpoints, hairpin, affinity, an IPv6 NodePort from an external client, an idempotent second apply, and
// cleanup of both families. Lab addresses mirror IPv4 (a.b.c.d is fd00:a:b:c::d, see lab/lab.ts).
import { beforeAll, describe, expect, it } from 'vitest';
import { endpointSlice, service, type EndpointSpec, type K8sObject } from '../support/objects.js';
import { CLI, FLAVOURS, NODE_NAME, TempFiles, applyObjects, nftTable, outcomes, podsHit, tally, useKernelLab } from './helpers.js';
import { type Lab } from './lab/index.js';

const A = { name: 'a', ip: '10.244.1.2', tcpPorts: [8080], udpPorts: [5353] };
const B = { name: 'b', ip: '10.244.1.3', tcpPorts: [8080], udpPorts: [5353] };
const C = { name: 'c', ip: '10.244.2.2' }; // a client pod
const X = { name: 'x', ip: '192.168.50.2' }; // an external client, routed to the node
const v6 = (ip: string): string => {
  const [a, b, c, d] = ip.split('.');
  return `fd00:${a}:${b}:${c}::${d}`;
};
const NODE_IP = '10.0.0.10';
const NODE_IP6 = v6(NODE_IP).replace(':0:0::', '::');
const DUAL = { nodeIp: `${NODE_IP},${NODE_IP6}`, clusterCidr: '10.244.0.0/16,fd00:10:244::/48' };

const local = (ip: string): EndpointSpec => ({ ip, nodeName: NODE_NAME });

interface Svc {
  readonly ips: readonly string[];
  readonly v4?: readonly string[];
  readonly v6?: readonly string[];
  readonly proto?: 'TCP' | 'UDP';
  readonly nodePort?: number;
  readonly affinity?: number;
}

function svc(name: string, s: Svc): K8sObject[] {
  const proto = s.proto ?? 'TCP';
  const target = proto === 'TCP' ? 8080 : 5353;
  const out: K8sObject[] = [
    service({
      name,
      clusterIP: s.ips[0]!,
      clusterIPs: s.ips,
      ports: [{ port: 80, targetPort: target, protocol: proto, ...(s.nodePort !== undefined ? { nodePort: s.nodePort } : {}) }],
      ...(s.nodePort !== undefined ? { type: 'NodePort' as const } : {}),
      ...(s.affinity !== undefined ? { affinityTimeoutSeconds: s.affinity } : {}),
    }),
  ];
  const ports = [{ port: target, protocol: proto }];
  if (s.v4 !== undefined) out.push(endpointSlice({ name: `${name}-v4`, service: name, ports, endpoints: s.v4.map(local), addressType: 'IPv4' }));
  if (s.v6 !== undefined) out.push(endpointSlice({ name: `${name}-v6`, service: name, ports, endpoints: s.v6.map(local), addressType: 'IPv6' }));
  return out;
}

describe.each(FLAVOURS)('dual-stack on a real kernel ($name)', ({ backend, flags: base }) => {
  const ctx = useKernelLab([A, B, C, X]);
  let lab: Lab;
  let files: TempFiles;
  const flags = { ...base, ...DUAL };
  beforeAll(() => {
    ({ lab, files } = ctx);
  });
  const ruleset = async (): Promise<string> =>
    backend === 'nftables' ? `${await nftTable(lab)}\n${await nftTable(lab, 'ip6')}` : `${await lab.iptablesSave()}\n${await lab.ip6tablesSave()}`;

  it('a dual-stack Service: each family reaches its own endpoints, nothing crosses', async () => {
    await applyObjects(lab, files, svc('web', { ips: ['10.96.3.1', 'fd00:10:96::3:1'], v4: [A.ip], v6: [v6(B.ip)] }), flags);
    const over4 = await lab.probe('c', { proto: 'tcp', ip: '10.96.3.1', port: 80, count: 6 });
    expect(podsHit(over4)).toEqual(Array(6).fill('a'));
    const over6 = await lab.probe('c', { proto: 'tcp', ip: 'fd00:10:96::3:1', port: 80, count: 6 });
    expect(podsHit(over6)).toEqual(Array(6).fill('b'));
    // The pod's own IPv6 address is what the endpoint sees (no masquerade for pod traffic).
    expect(over6.map((r) => (r.ok ? r.reply.peer : r.error))).toEqual(Array(6).fill(v6(C.ip)));
  });

  it('IPv6 ClusterIP: TCP and UDP from a pod, masqueraded from the node', async () => {
    await applyObjects(
      lab,
      files,
      [...svc('tcp6', { ips: ['fd00:10:96::4:1'], v6: [v6(A.ip), v6(B.ip)] }), ...svc('udp6', { ips: ['fd00:10:96::4:2'], v6: [v6(A.ip)], proto: 'UDP' })],
      flags,
    );
    const spread = tally(podsHit(await lab.probe('c', { proto: 'tcp', ip: 'fd00:10:96::4:1', port: 80, count: 30 })));
    expect(Object.keys(spread).sort()).toEqual(['a', 'b']);
    const udp = await lab.probe('c', { proto: 'udp', ip: 'fd00:10:96::4:2', port: 80, count: 3 });
    expect(udp.map((r) => (r.ok ? [r.reply.pod, r.reply.proto, r.reply.port] : r.error))).toEqual(Array(3).fill(['a', 'udp', 5353]));
    const fromNode = await lab.probe('node', { proto: 'udp', ip: 'fd00:10:96::4:2', port: 80, count: 2 });
    expect(fromNode.map((r) => (r.ok ? r.reply.peer : r.error))).toEqual(Array(2).fill(lab.nodeIP6));
  });

  it('IPv6 without endpoints: TCP and UDP are refused', async () => {
    await applyObjects(lab, files, svc('empty6', { ips: ['fd00:10:96::5:1'], v6: [] }), flags);
    // IPv6 TCP learns of the REJECT when the SYN is retransmitted (see docs/testing.md): over a second.
    expect(outcomes(await lab.probe('c', { proto: 'tcp', ip: 'fd00:10:96::5:1', port: 80, timeoutMs: 2500 }))).toEqual(['refused']);
    const udpEmpty = svc('udpempty6', { ips: ['fd00:10:96::5:2'], v6: [], proto: 'UDP' });
    await applyObjects(lab, files, [...svc('empty6', { ips: ['fd00:10:96::5:1'], v6: [] }), ...udpEmpty], flags);
    expect(outcomes(await lab.probe('c', { proto: 'udp', ip: 'fd00:10:96::5:2', port: 80, timeoutMs: 1000 }))).toEqual(['refused']);
  });

  it('IPv6 hairpin: a pod reaches itself through its Service, masqueraded', async () => {
    await applyObjects(lab, files, svc('self6', { ips: ['fd00:10:96::6:1'], v6: [v6(A.ip)] }), flags);
    const r = await lab.probe('a', { proto: 'tcp', ip: 'fd00:10:96::6:1', port: 80, count: 2 });
    expect(r.map((p) => (p.ok ? p.reply.pod : p.error))).toEqual(['a', 'a']);
    // Masqueraded, so the reply comes back through the node instead of straight to itself.
    expect(r.every((p) => p.ok && p.reply.peer !== v6(A.ip))).toBe(true);
  });

  it('IPv6 session affinity keeps a client on one endpoint', async () => {
    await applyObjects(lab, files, svc('sticky6', { ips: ['fd00:10:96::7:1'], v6: [v6(A.ip), v6(B.ip)], affinity: 600 }), flags);
    const hits = podsHit(await lab.probe('c', { proto: 'tcp', ip: 'fd00:10:96::7:1', port: 80, count: 12 }));
    expect(hits).toHaveLength(12);
    expect(new Set(hits).size).toBe(1);
  });

  it('an IPv6 NodePort from an external client; the IPv4 NodePort of an IPv6-only Service does not exist', async () => {
    await applyObjects(lab, files, svc('np6', { ips: ['fd00:10:96::8:1'], v6: [v6(A.ip)], nodePort: 30090 }), flags);
    const r = await lab.probe('x', { proto: 'tcp', ip: NODE_IP6, port: 30090, count: 3 });
    expect(podsHit(r)).toEqual(['a', 'a', 'a']);
    // eTP Cluster: masqueraded to the node.
    expect(r.map((p) => (p.ok ? p.reply.peer : p.error))).toEqual(Array(3).fill(lab.nodeIP6));
    expect(outcomes(await lab.probe('x', { proto: 'tcp', ip: NODE_IP, port: 30090, timeoutMs: 500 }))).not.toContain('ok:a');
  });

  it('a second identical apply changes nothing in either family', async () => {
    const objects = [...svc('web', { ips: ['10.96.3.1', 'fd00:10:96::3:1'], v4: [A.ip], v6: [v6(B.ip)], nodePort: 30091 }), ...svc('sticky6', { ips: ['fd00:10:96::7:1'], v6: [v6(A.ip)], affinity: 600 })];
    await applyObjects(lab, files, objects, flags);
    const first = await ruleset();
    expect(first).toContain('fd00:10:96::3:1');
    expect(first).toContain('10.96.3.1');
    await applyObjects(lab, files, objects, flags);
    expect(await ruleset()).toBe(first);
    expect(podsHit(await lab.probe('c', { proto: 'tcp', ip: 'fd00:10:96::3:1', port: 80 }))).toEqual(['b']);
  });

  it('cleanup removes both families', async () => {
    await applyObjects(lab, files, svc('web', { ips: ['10.96.3.1', 'fd00:10:96::3:1'], v4: [A.ip], v6: [v6(B.ip)] }), flags);
    const r = await lab.exec('node', process.execPath, [CLI, 'cleanup'], { reject: false });
    expect(r.exitCode, r.stderr).toBe(0);
    const after = await ruleset();
    expect(after).not.toContain('KUBE-SERVICES');
    expect(after).not.toContain('kube-proxy');
    expect(outcomes(await lab.probe('c', { proto: 'tcp', ip: 'fd00:10:96::3:1', port: 80, timeoutMs: 500 }))).toEqual(['timeout']);
  });
});
