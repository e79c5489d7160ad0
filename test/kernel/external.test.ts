// Real packets for external traffic: NodePorts, external IPs, load-balancer IPs and their source ranges, and
// externalTrafficPolicy, from an external client routed to the node, from pods and from the node itself.
import { beforeAll, describe, expect, it } from 'vitest';
import { endpointSlice, service, type EndpointSpec, type IngressSpec, type K8sObject } from '../support/objects.js';
import { NODE_NAME, REMOTE_NODE, TempFiles, FLAVOURS, applyObjects, outcomes, podsHit, useKernelLab, compileApply, nftTable } from './helpers.js';
import { type Lab } from './lab/index.js';

const A = { name: 'a', ip: '10.244.1.2', tcpPorts: [8080], udpPorts: [8080] }; // on this node (node-a)
const B = { name: 'b', ip: '10.244.1.3', tcpPorts: [8080], udpPorts: [8080] }; // "on node-b" as far as slices say
const C = { name: 'c', ip: '10.244.2.2' }; // a client pod
// Outside the cluster CIDR, routed to the node like a client on the node's network.
const X = { name: 'x', ip: '192.168.50.2' };
const Y = { name: 'y', ip: '198.51.100.7' };
const NODE_IP = '10.0.0.10';

const local = (ip: string): EndpointSpec => ({ ip, nodeName: NODE_NAME });
const remote = (ip: string): EndpointSpec => ({ ip, nodeName: REMOTE_NODE });

interface External {
  type?: 'NodePort' | 'LoadBalancer';
  nodePort?: number;
  etpLocal?: boolean;
  externalIPs?: string[];
  ingress?: IngressSpec[];
  sourceRanges?: string[];
  protocol?: 'TCP' | 'UDP';
}

function svc(name: string, clusterIP: string, endpoints: EndpointSpec[], x: External): K8sObject[] {
  return [
    service({
      name,
      clusterIP,
      type: x.type ?? 'NodePort',
      ports: [{ port: 80, targetPort: 8080, protocol: x.protocol ?? 'TCP', ...(x.nodePort !== undefined ? { nodePort: x.nodePort } : {}) }],
      ...(x.etpLocal === true ? { externalTrafficPolicy: 'Local' as const } : {}),
      ...(x.externalIPs ? { externalIPs: x.externalIPs } : {}),
      ...(x.ingress ? { loadBalancerIngress: x.ingress } : {}),
      ...(x.sourceRanges ? { loadBalancerSourceRanges: x.sourceRanges } : {}),
    }),
    endpointSlice({ name: `${name}-1`, service: name, ports: [{ port: 8080, protocol: x.protocol ?? 'TCP' }], endpoints }),
  ];
}

describe.each(FLAVOURS)('external traffic on a real kernel ($name)', ({ backend, flags: base }) => {
  const ctx = useKernelLab([A, B, C, X, Y]);
  let lab: Lab;
  let files: TempFiles;
  const flags = { ...base, nodeIp: NODE_IP };
  beforeAll(() => {
    ({ lab, files } = ctx);
  });
  /** What this backend programmed, as text: iptables-save, or the nftables table. */
  const ruleset = async (): Promise<string> => (backend === 'nftables' ? nftTable(lab) : lab.iptablesSave());
  const peers = async (from: string, ip: string, port: number, count = 6, proto: 'tcp' | 'udp' = 'tcp') => {
    const r = await lab.probe(from, { proto, ip, port, count, timeoutMs: 1000 });
    return { pods: new Set(podsHit(r)), peers: new Set(r.map((p) => (p.ok ? p.reply.peer : ''))) };
  };

  it('NodePort, eTP Cluster: an external client reaches every endpoint, masqueraded, over TCP and UDP', async () => {
    await applyObjects(lab, files, svc('np', '10.96.2.1', [local(A.ip), remote(B.ip)], { nodePort: 30080 }), flags);
    const tcp = await peers('x', NODE_IP, 30080, 12);
    expect([...tcp.pods].sort()).toEqual(['a', 'b']);
    expect([...tcp.peers]).toEqual([NODE_IP]);
    await applyObjects(lab, files, svc('np-udp', '10.96.2.2', [local(A.ip)], { nodePort: 30081, protocol: 'UDP' }), flags);
    const udp = await peers('x', NODE_IP, 30081, 3, 'udp');
    expect([...udp.pods]).toEqual(['a']);
    expect([...udp.peers]).toEqual([NODE_IP]);
  });

  it('NodePort from the node itself is served; from localhost only with localhost NodePorts (iptables, as kube-proxy)', async () => {
    await applyObjects(lab, files, svc('np', '10.96.2.1', [local(A.ip)], { nodePort: 30080 }), flags);
    expect(podsHit(await lab.probe('node', { proto: 'tcp', ip: NODE_IP, port: 30080 }))).toEqual(['a']);
    if (backend !== 'iptables') {
      // Never on nftables or IPVS: nothing listens on 127.0.0.1:30080.
      expect(outcomes(await lab.probe('node', { proto: 'tcp', ip: '127.0.0.1', port: 30080, timeoutMs: 500 }))).toEqual(['refused']);
      return;
    }
    expect(podsHit(await lab.probe('node', { proto: 'tcp', ip: '127.0.0.1', port: 30080 }))).toEqual(['a']);
    // Turned off, localhost is not a NodePort address.
    await applyObjects(lab, files, svc('np', '10.96.2.1', [local(A.ip)], { nodePort: 30080 }), { ...flags, localhostNodePorts: false });
    expect(outcomes(await lab.probe('node', { proto: 'tcp', ip: '127.0.0.1', port: 30080, timeoutMs: 500 }))).not.toEqual(['ok:a']);
  });

  it('eTP Local: outside clients reach only local endpoints with their source kept; pods still reach all', async () => {
    await applyObjects(lab, files, svc('local', '10.96.2.3', [local(A.ip), remote(B.ip)], { nodePort: 30082, etpLocal: true }), flags);
    const ext = await peers('x', NODE_IP, 30082, 8);
    expect([...ext.pods]).toEqual(['a']);
    expect([...ext.peers]).toEqual([X.ip]);
    // A pod's traffic to the NodePort short-circuits to every endpoint (upstream's "pod traffic" rule).
    const pod = await peers('c', NODE_IP, 30082, 12);
    expect([...pod.pods].sort()).toEqual(['a', 'b']);
  });

  it('eTP Local without a local endpoint: dropped from outside, served from a pod and from the node', async () => {
    await applyObjects(lab, files, svc('nolocal', '10.96.2.4', [remote(B.ip)], { nodePort: 30083, etpLocal: true }), flags);
    expect(outcomes(await lab.probe('x', { proto: 'tcp', ip: NODE_IP, port: 30083, timeoutMs: 500 }))).toEqual(['timeout']);
    expect(podsHit(await lab.probe('c', { proto: 'tcp', ip: NODE_IP, port: 30083 }))).toEqual(['b']);
    expect(podsHit(await lab.probe('node', { proto: 'tcp', ip: NODE_IP, port: 30083 }))).toEqual(['b']);
  });

  it('no endpoints: the NodePort, external IP and LB IP are rejected', async () => {
    await applyObjects(
      lab,
      files,
      svc('empty', '10.96.2.5', [], { type: 'LoadBalancer', nodePort: 30084, externalIPs: ['203.0.113.5'], ingress: [{ ip: '203.0.113.6' }] }),
      flags,
    );
    for (const ip of [NODE_IP, '203.0.113.5', '203.0.113.6']) {
      const port = ip === NODE_IP ? 30084 : 80;
      expect(outcomes(await lab.probe('x', { proto: 'tcp', ip, port, timeoutMs: 1000 }))).toEqual(['refused']);
    }
  });

  it('externalIPs and LB IPs are served; ipMode Proxy and hostname-only ingress get nothing', async () => {
    await applyObjects(
      lab,
      files,
      svc('lb', '10.96.2.6', [local(A.ip)], {
        type: 'LoadBalancer',
        nodePort: 30085,
        externalIPs: ['203.0.113.10'],
        ingress: [{ ip: '203.0.113.11' }, { ip: '203.0.113.12', ipMode: 'Proxy' }, { hostname: 'lb.example' }],
      }),
      flags,
    );
    expect(podsHit(await lab.probe('x', { proto: 'tcp', ip: '203.0.113.10', port: 80 }))).toEqual(['a']);
    expect(podsHit(await lab.probe('x', { proto: 'tcp', ip: '203.0.113.11', port: 80 }))).toEqual(['a']);
    expect(outcomes(await lab.probe('x', { proto: 'tcp', ip: '203.0.113.12', port: 80, timeoutMs: 500 }))).toEqual(['timeout']);
    expect(await ruleset()).not.toContain('203.0.113.12');
  });

  it('source ranges: an allowed source is served, another dropped, and the NodePort is unaffected', async () => {
    await applyObjects(
      lab,
      files,
      svc('fw', '10.96.2.7', [local(A.ip)], { type: 'LoadBalancer', nodePort: 30086, ingress: [{ ip: '203.0.113.20' }], sourceRanges: ['192.168.50.0/24'] }),
      flags,
    );
    expect(podsHit(await lab.probe('x', { proto: 'tcp', ip: '203.0.113.20', port: 80 }))).toEqual(['a']);
    expect(outcomes(await lab.probe('y', { proto: 'tcp', ip: '203.0.113.20', port: 80, timeoutMs: 500 }))).toEqual(['timeout']);
    expect(podsHit(await lab.probe('y', { proto: 'tcp', ip: NODE_IP, port: 30086 }))).toEqual(['a']);
  });

  it('hairpin through a NodePort: a pod reaching itself is masqueraded', async () => {
    await applyObjects(lab, files, svc('hairpin', '10.96.2.8', [local(A.ip)], { nodePort: 30087 }), flags);
    const r = await peers('a', NODE_IP, 30087, 2);
    expect([...r.pods]).toEqual(['a']);
    expect([...r.peers]).toEqual([NODE_IP]);
  });

  it('a second identical apply changes nothing; an update removes exactly what went away; foreign rules survive', async () => {
    await lab.iptablesRestore('*filter\n:FOREIGN - [0:0]\n-A FOREIGN -s 192.0.2.1/32 -j DROP\nCOMMIT\n');
    await lab.exec('node', 'nft', ['add table ip foreign; add chain ip foreign c; add rule ip foreign c ip saddr 192.0.2.1 drop']);
    const objects = svc('twice', '10.96.2.9', [local(A.ip)], { type: 'LoadBalancer', nodePort: 30088, externalIPs: ['203.0.113.30'], ingress: [{ ip: '203.0.113.31' }], sourceRanges: ['192.168.50.0/24'] });
    await applyObjects(lab, files, objects, flags);
    const first = await ruleset();
    await applyObjects(lab, files, objects, flags);
    expect(await ruleset()).toBe(first);
    // The external IP goes away: its rules go, the rest stays.
    await applyObjects(lab, files, svc('twice', '10.96.2.9', [local(A.ip)], { type: 'LoadBalancer', nodePort: 30088, ingress: [{ ip: '203.0.113.31' }], sourceRanges: ['192.168.50.0/24'] }), flags);
    const after = await ruleset();
    expect(after).not.toContain('203.0.113.30');
    expect(after).toContain('203.0.113.31');
    expect(await lab.iptablesSave()).toContain('-A FOREIGN -s 192.0.2.1/32 -j DROP');
    expect((await lab.exec('node', 'nft', ['list', 'table', 'ip', 'foreign'])).stdout).toContain('ip saddr 192.0.2.1 drop');
    await lab.exec('node', 'nft', ['delete', 'table', 'ip', 'foreign']);
    expect(outcomes(await lab.probe('x', { proto: 'tcp', ip: '203.0.113.30', port: 80, timeoutMs: 500 }))).toEqual(['timeout']);
    expect(podsHit(await lab.probe('x', { proto: 'tcp', ip: '203.0.113.31', port: 80 }))).toEqual(['a']);
  });

  it('--nodeport-addresses limits NodePorts to the node addresses inside the CIDRs', async () => {
    const r = await compileApply(lab, await files.write(svc('npa', '10.96.2.10', [local(A.ip)], { nodePort: 30089 })), {
      ...flags,
      nodePortAddresses: '10.0.0.0/24',
    });
    expect(r.exitCode).toBe(0);
    expect(podsHit(await lab.probe('x', { proto: 'tcp', ip: NODE_IP, port: 30089 }))).toEqual(['a']);
    if (backend === 'nftables') {
      expect(await nftTable(lab)).toMatch(/set nodeport-ips \{[^}]*elements = \{ 10\.0\.0\.10 \}/s);
      return;
    }
    const nat = await lab.iptablesSave('nat');
    expect(nat).toMatch(new RegExp(`-A KUBE-SERVICES -d ${NODE_IP.replaceAll('.', '\\.')}/32 .*-j KUBE-NODEPORTS`));
    expect(nat).not.toContain('--dst-type LOCAL -j KUBE-NODEPORTS');
    // 127.0.0.1 is outside the CIDRs: not a NodePort address now.
    expect(outcomes(await lab.probe('node', { proto: 'tcp', ip: '127.0.0.1', port: 30089, timeoutMs: 500 }))).toEqual(['refused']);
  });
});
