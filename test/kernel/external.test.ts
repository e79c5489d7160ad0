// Real packets for external traffic: NodePorts, external IPs, load-balancer IPs and their source ranges, and
// externalTrafficPolicy, from an external client routed to the node, from pods and from the node itself.
// Runs on the host for iptables and nftables, and in the QEMU guest for IPVS (test/kernel/ipvs.test.ts).
import { beforeAll, describe, expect, it } from 'vitest';
import { endpointSlice, service, type EndpointSpec, type IngressSpec, type K8sObject } from '../support/objects.js';
import {
  NODE_NAME,
  REMOTE_NODE,
  TempFiles,
  FLAVOURS,
  applyObjects,
  outcomes,
  podsHit,
  useKernelLab,
  compileApply,
  ipvsState,
  ipvsTable,
  nftTable,
} from './helpers.js';
import { type Lab } from './lab/index.js';

const A = { name: 'a', ip: '10.244.1.2', tcpPorts: [8080], udpPorts: [8080] }; // on this node (node-a)
const B = { name: 'b', ip: '10.244.1.3', tcpPorts: [8080], udpPorts: [8080] }; // "on node-b" as far as slices say
const C = { name: 'c', ip: '10.244.2.2' }; // a client pod
// Outside the cluster CIDR, routed to the node like a client on the node's network.
const X = { name: 'x', ip: '192.168.50.2' };
const Y = { name: 'y', ip: '198.51.100.7' };
const NODE_IP = '10.0.0.10';
/** Another address of the node, added by the NodePort-addresses test. */
const OTHER_NODE_IP = '10.0.1.10';

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
  /** What this backend programmed, as text: iptables-save, the nftables table, or for IPVS iptables-save and the IPVS table, sets and bound addresses. */
  const ruleset = async (): Promise<string> => {
    if (backend === 'nftables') return nftTable(lab);
    const save = await lab.iptablesSave();
    return backend === 'ipvs' ? `${save}\n${await ipvsState(lab)}` : save;
  };
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
    const objects = svc('local', '10.96.2.3', [local(A.ip), remote(B.ip)], {
      type: 'LoadBalancer',
      nodePort: 30082,
      etpLocal: true,
      externalIPs: ['203.0.113.40'],
      ingress: [{ ip: '203.0.113.41' }],
    });
    await applyObjects(lab, files, objects, flags);
    for (const [ip, port] of [[NODE_IP, 30082], ['203.0.113.40', 80], ['203.0.113.41', 80]] as const) {
      const ext = await peers('x', ip, port, 8);
      expect([...ext.pods], `${ip}:${port}`).toEqual(['a']);
      expect([...ext.peers], `${ip}:${port}`).toEqual([X.ip]);
    }
    // A pod's traffic to the NodePort short-circuits to every endpoint (upstream's "pod traffic" rule). IPVS has
    // one virtual server for every client, with only the local endpoints (as upstream; docs/backends/ipvs.md).
    const pod = await peers('c', NODE_IP, 30082, 12);
    expect([...pod.pods].sort()).toEqual(backend === 'ipvs' ? ['a'] : ['a', 'b']);
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
    // eTP Cluster: masqueraded, as through the NodePort.
    for (const ip of ['203.0.113.10', '203.0.113.11']) {
      const r = await peers('x', ip, 80, 2);
      expect([...r.pods], ip).toEqual(['a']);
      expect([...r.peers], ip).toEqual([NODE_IP]);
    }
    expect(outcomes(await lab.probe('x', { proto: 'tcp', ip: '203.0.113.12', port: 80, timeoutMs: 500 }))).toEqual(['timeout']);
    expect(await ruleset()).not.toContain('203.0.113.12');
  });

  it('source ranges: an allowed source is served, another dropped, and the NodePort is unaffected; /32, /0 and the node', async () => {
    const fw = (sourceRanges: string[]) =>
      svc('fw', '10.96.2.7', [local(A.ip)], { type: 'LoadBalancer', nodePort: 30086, ingress: [{ ip: '203.0.113.20' }], sourceRanges });
    const lb = async (from: string) => outcomes(await lab.probe(from, { proto: 'tcp', ip: '203.0.113.20', port: 80, timeoutMs: 500 }));
    await applyObjects(lab, files, fw(['192.168.50.0/24']), flags);
    expect(await lb('x')).toEqual(['ok:a']);
    expect(await lb('y')).toEqual(['timeout']);
    expect(podsHit(await lab.probe('y', { proto: 'tcp', ip: NODE_IP, port: 30086 }))).toEqual(['a']);
    // The node is not in a range: its own connections are dropped too.
    expect(await lb('node')).toEqual(['timeout']);
    if (backend === 'ipvs') {
      const members = (await lab.exec('node', 'ipset', ['list', 'KUBE-LOAD-BALANCER-SOURCE-CIDR'])).stdout;
      expect(members).toContain('203.0.113.20,tcp:80,192.168.50.0/24');
    }

    // A full-length range (Y's address, and the node's IP, which lets the node in) and the whole space.
    await applyObjects(lab, files, fw([`${Y.ip}/32`, `${NODE_IP}/32`]), flags);
    expect(await lb('y')).toEqual(['ok:a']);
    expect(await lb('x')).toEqual(['timeout']);
    expect(await lb('node')).toEqual(['ok:a']);
    const second = await ruleset();
    await applyObjects(lab, files, fw([`${Y.ip}/32`, `${NODE_IP}/32`]), flags);
    expect(await ruleset()).toBe(second);
    await applyObjects(lab, files, fw(['0.0.0.0/0']), flags);
    expect(await lb('x')).toEqual(['ok:a']);
    expect(await lb('y')).toEqual(['ok:a']);
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

  it('NodePorts answer on every local address (nftables: the primary node IP); --nodeport-addresses limits them to those in the CIDRs', async () => {
    // A second node address, outside 10.0.0.0/24: in the lab's node namespace, for this test only.
    await lab.exec('node', 'ip', ['address', 'add', `${OTHER_NODE_IP}/32`, 'dev', 'eth0']);
    try {
      const objects = svc('npa', '10.96.2.10', [local(A.ip)], { nodePort: 30089 });
      await applyObjects(lab, files, objects, flags);
      expect(podsHit(await lab.probe('x', { proto: 'tcp', ip: NODE_IP, port: 30089 }))).toEqual(['a']);
      // kube-proxy's nftables default is the primary node IP only (docs/backends/nftables.md).
      const other = outcomes(await lab.probe('x', { proto: 'tcp', ip: OTHER_NODE_IP, port: 30089, timeoutMs: 500 }));
      expect(other).toEqual([backend === 'nftables' ? 'refused' : 'ok:a']);
      if (backend === 'ipvs') {
        // Every local address but kube-ipvs0's (the ClusterIP's) and loopback gets a virtual server.
        expect((await ipvsTable(lab)).filter((l) => l.startsWith('-A '))).toEqual([
          `-A -t ${NODE_IP}:30089 -s rr`,
          `-A -t ${OTHER_NODE_IP}:30089 -s rr`,
          '-A -t 10.96.2.10:80 -s rr',
        ]);
      }

      await applyObjects(lab, files, objects, { ...flags, nodePortAddresses: '10.0.0.0/24' });
      expect(podsHit(await lab.probe('x', { proto: 'tcp', ip: NODE_IP, port: 30089 }))).toEqual(['a']);
      expect(outcomes(await lab.probe('x', { proto: 'tcp', ip: OTHER_NODE_IP, port: 30089, timeoutMs: 500 }))).toEqual(['refused']);
      // 127.0.0.1 is outside the CIDRs: not a NodePort address now.
      expect(outcomes(await lab.probe('node', { proto: 'tcp', ip: '127.0.0.1', port: 30089, timeoutMs: 500 }))).toEqual(['refused']);
      if (backend === 'nftables') {
        expect(await nftTable(lab)).toMatch(/set nodeport-ips \{[^}]*elements = \{ 10\.0\.0\.10 \}/s);
      } else if (backend === 'ipvs') {
        expect((await ipvsTable(lab)).filter((l) => l.startsWith('-A '))).toEqual([`-A -t ${NODE_IP}:30089 -s rr`, '-A -t 10.96.2.10:80 -s rr']);
      } else {
        const nat = await lab.iptablesSave('nat');
        expect(nat).toMatch(new RegExp(`-A KUBE-SERVICES -d ${NODE_IP.replaceAll('.', '\\.')}/32 .*-j KUBE-NODEPORTS`));
        expect(nat).not.toContain('--dst-type LOCAL -j KUBE-NODEPORTS');
      }
    } finally {
      await lab.exec('node', 'ip', ['address', 'del', `${OTHER_NODE_IP}/32`, 'dev', 'eth0']);
    }
  });
});
