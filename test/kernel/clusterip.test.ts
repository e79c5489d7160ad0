// Real packets through rules applied by `switchboard compile --apply`: ClusterIP DNAT, port mapping,
// load balancing, protocol separation, REJECT without endpoints, masquerading and idempotence.
import { beforeAll, describe, expect, it } from 'vitest';
import { endpointSlice, service, type K8sObject } from '../support/objects.js';
import {
  NODE_IP,
  NODE_NAME,
  TempFiles,
  FLAVOURS,
  ipvsState,
  nftTable,
  applyObjects,
  loopBackMembers,
  flushConntrack,
  outcomes,
  podsHit,
  useKernelLab,
  tally,
} from './helpers.js';
import { type Lab, type ProbeResult } from './lab/index.js';

const A = { name: 'a', ip: '10.244.1.2', tcpPorts: [8080, 5353], udpPorts: [5353] };
const B = { name: 'b', ip: '10.244.1.3', tcpPorts: [8080, 5353], udpPorts: [5353] };
const C = { name: 'c', ip: '10.244.2.2' }; // client only

const ep = (ip: string) => ({ ip, nodeName: NODE_NAME });

/** web: unnamed port 80 → 8080 on A. */
const WEB_IP = '10.96.0.10';
const web: K8sObject[] = [
  service({ name: 'web', clusterIP: WEB_IP, ports: [{ port: 80, targetPort: 8080 }] }),
  endpointSlice({ name: 'web-1', service: 'web', ports: [{ port: 8080 }], endpoints: [ep(A.ip)] }),
];

/** named: port `http` 80, targetPort `http`, slice port `http` 8080 on B. */
const NAMED_IP = '10.96.0.11';
const named: K8sObject[] = [
  service({ name: 'named', clusterIP: NAMED_IP, ports: [{ name: 'http', port: 80, targetPort: 'http' }] }),
  endpointSlice({ name: 'named-1', service: 'named', ports: [{ name: 'http', port: 8080 }], endpoints: [ep(B.ip)] }),
];

const PAIR_IP = '10.96.0.20';
const pair: K8sObject[] = [
  service({ name: 'pair', clusterIP: PAIR_IP, ports: [{ port: 80, targetPort: 8080 }] }),
  endpointSlice({ name: 'pair-1', service: 'pair', ports: [{ port: 8080 }], endpoints: [ep(A.ip), ep(B.ip)] }),
];

/** dns: 53/UDP (`dns`) → A:5353, 53/TCP (`dns-tcp`) → B:5353; both pods listen on both protocols. */
const DNS_IP = '10.96.0.53';
const dns: K8sObject[] = [
  service({
    name: 'dns',
    clusterIP: DNS_IP,
    ports: [
      { name: 'dns', port: 53, protocol: 'UDP', targetPort: 5353 },
      { name: 'dns-tcp', port: 53, protocol: 'TCP', targetPort: 5353 },
    ],
  }),
  endpointSlice({ name: 'dns-udp', service: 'dns', ports: [{ name: 'dns', port: 5353, protocol: 'UDP' }], endpoints: [ep(A.ip)] }),
  endpointSlice({ name: 'dns-tcp', service: 'dns', ports: [{ name: 'dns-tcp', port: 5353, protocol: 'TCP' }], endpoints: [ep(B.ip)] }),
];

/** udp-only: 53/UDP → B:5353, nothing else. */
const UDP_ONLY_IP = '10.96.0.54';
const udpOnly: K8sObject[] = [
  service({ name: 'udp-only', clusterIP: UDP_ONLY_IP, ports: [{ name: 'dns', port: 53, protocol: 'UDP', targetPort: 5353 }] }),
  endpointSlice({ name: 'udp-only-1', service: 'udp-only', ports: [{ name: 'dns', port: 5353, protocol: 'UDP' }], endpoints: [ep(B.ip)] }),
];

/** empty: TCP 80 and UDP 80, one slice without endpoints. */
const EMPTY_IP = '10.96.0.30';
const empty: K8sObject[] = [
  service({
    name: 'empty',
    clusterIP: EMPTY_IP,
    ports: [
      { name: 'tcp', port: 80, targetPort: 8080 },
      { name: 'udp', port: 80, protocol: 'UDP', targetPort: 5353 },
    ],
  }),
  endpointSlice({ name: 'empty-1', service: 'empty', ports: [{ name: 'tcp', port: 8080 }], endpoints: [] }),
];

/** self: A's own Service, for hairpin traffic. */
const SELF_IP = '10.96.0.40';
const self: K8sObject[] = [
  service({ name: 'self', clusterIP: SELF_IP, ports: [{ port: 80, targetPort: 8080 }] }),
  endpointSlice({ name: 'self-1', service: 'self', ports: [{ port: 8080 }], endpoints: [ep(A.ip)] }),
];

function replies(results: ProbeResult[]) {
  return results.map((r) => {
    if (!r.ok) throw new Error(`probe failed: ${r.error} (all: ${JSON.stringify(results)})`);
    return r.reply;
  });
}

describe.each(FLAVOURS)('ClusterIP services on a real kernel ($name)', ({ backend, flags }) => {
  // IPVS binds every ClusterIP to the node, which refuses (KUBE-IPVS-FILTER) what iptables mode never delivers;
  // nftables mode rejects traffic to a ClusterIP's other ports (cluster-ips-check), as upstream's does.
  const nonServicePort = backend === 'iptables' ? 'timeout' : 'refused';
  const ctx = useKernelLab([A, B, C]);
  let lab: Lab;
  let files: TempFiles;
  beforeAll(() => {
    ({ lab, files } = ctx);
  });

  it('without rules the ClusterIPs lead nowhere (the baseline every test departs from)', async () => {
    expect(outcomes(await lab.probe('c', { proto: 'tcp', ip: WEB_IP, port: 80, timeoutMs: 300 }))).toEqual(['timeout']);
  });

  it('a numbered targetPort: port 80 reaches A on 8080, from a pod and from the node', async () => {
    await applyObjects(lab, files, [...web, ...named], flags);
    const fromPod = replies(await lab.probe('c', { proto: 'tcp', ip: WEB_IP, port: 80, count: 3 }));
    expect(fromPod.map((r) => [r.pod, r.proto, r.port, r.peer])).toEqual(Array(3).fill(['a', 'tcp', 8080, C.ip]));
    const fromNode = replies(await lab.probe('node', { proto: 'tcp', ip: WEB_IP, port: 80, count: 2 }));
    expect(fromNode.map((r) => [r.pod, r.port, r.peer])).toEqual(Array(2).fill(['a', 8080, NODE_IP]));
  });

  it('a named targetPort resolves through the slice port of the same name: 80 reaches B on 8080', async () => {
    await applyObjects(lab, files, [...web, ...named], flags);
    const fromPod = replies(await lab.probe('c', { proto: 'tcp', ip: NAMED_IP, port: 80, count: 3 }));
    expect(fromPod.map((r) => [r.pod, r.proto, r.port, r.peer])).toEqual(Array(3).fill(['b', 'tcp', 8080, C.ip]));
    const fromNode = replies(await lab.probe('node', { proto: 'tcp', ip: NAMED_IP, port: 80, count: 2 }));
    expect(fromNode.map((r) => [r.pod, r.port, r.peer])).toEqual(Array(2).fill(['b', 8080, NODE_IP]));
    // Only the Service port is programmed: the ClusterIP does not answer on the target port itself.
    expect(outcomes(await lab.probe('c', { proto: 'tcp', ip: NAMED_IP, port: 8080, timeoutMs: 300 }))).toEqual([nonServicePort]);
  });

  it('a two-endpoint Service spreads 40 connections over both endpoints', async () => {
    await applyObjects(lab, files, pair, flags);
    const hits = tally(podsHit(await lab.probe('c', { proto: 'tcp', ip: PAIR_IP, port: 80, count: 40 })));
    expect(Object.keys(hits).sort()).toEqual(['a', 'b']);
    // Binomial(40, 1/2): fewer than 5 on one side happens about twice in ten million runs.
    expect(hits['a']).toBeGreaterThanOrEqual(5);
    expect(hits['b']).toBeGreaterThanOrEqual(5);
  });

  it('TCP and UDP on the same port number are kept apart: TCP 53 → B:5353, UDP 53 → A:5353', async () => {
    await applyObjects(lab, files, dns, flags);
    const tcp = replies(await lab.probe('c', { proto: 'tcp', ip: DNS_IP, port: 53, count: 8 }));
    expect(tcp.map((r) => [r.pod, r.proto, r.port])).toEqual(Array(8).fill(['b', 'tcp', 5353]));
    const udp = replies(await lab.probe('c', { proto: 'udp', ip: DNS_IP, port: 53, count: 8 }));
    expect(udp.map((r) => [r.pod, r.proto, r.port])).toEqual(Array(8).fill(['a', 'udp', 5353]));
    const udpFromNode = replies(await lab.probe('node', { proto: 'udp', ip: DNS_IP, port: 53, count: 2 }));
    expect(udpFromNode.map((r) => [r.pod, r.proto, r.port])).toEqual(Array(2).fill(['a', 'udp', 5353]));
  });

  it('a UDP-only Service applied over rules that balance only TCP is served (nftables: a map per protocol)', async () => {
    await applyObjects(lab, files, pair, flags);
    await applyObjects(lab, files, udpOnly, flags);
    const udp = replies(await lab.probe('c', { proto: 'udp', ip: UDP_ONLY_IP, port: 53, count: 3 }));
    expect(udp.map((r) => [r.pod, r.proto, r.port])).toEqual(Array(3).fill(['b', 'udp', 5353]));
    expect(outcomes(await lab.probe('c', { proto: 'tcp', ip: PAIR_IP, port: 80, timeoutMs: 300 }))).toEqual(['timeout']);
  });

  it('a Service without endpoints REJECTs: TCP and UDP are refused, from a pod and from the node', async () => {
    await applyObjects(lab, files, empty, flags);
    expect(outcomes(await lab.probe('c', { proto: 'tcp', ip: EMPTY_IP, port: 80, count: 3 }))).toEqual(Array(3).fill('refused'));
    expect(outcomes(await lab.probe('c', { proto: 'udp', ip: EMPTY_IP, port: 80, count: 3 }))).toEqual(Array(3).fill('refused'));
    expect(outcomes(await lab.probe('node', { proto: 'tcp', ip: EMPTY_IP, port: 80 }))).toEqual(['refused']);
    // A REJECT in OUTPUT fails the node's own sendmsg() with EPERM before any ICMP can come back; either
    // way the datagram was rejected, not silently dropped (that would be a timeout).
    const nodeUdp = outcomes(await lab.probe('node', { proto: 'udp', ip: EMPTY_IP, port: 80, count: 2 }));
    for (const o of nodeUdp) expect(['refused', 'EPERM']).toContain(o);
    // Only the Service's ports are rejected; another port on the same IP is simply not a Service.
    expect(outcomes(await lab.probe('c', { proto: 'tcp', ip: EMPTY_IP, port: 81, timeoutMs: 300 }))).toEqual([nonServicePort]);
  });

  describe('masquerading', () => {
    /** conntrack entries to `ip` whose source was NATed (MASQUERADE --random-fully rewrites the port). */
    async function srcNatted(ip: string): Promise<string> {
      const r = await lab.exec('node', 'conntrack', ['-L', '-p', 'tcp', '--orig-dst', ip, '--src-nat'], { reject: false });
      return r.stdout;
    }

    it('a pod reaching itself through its own Service is masqueraded to the node IP (hairpin)', async () => {
      await applyObjects(lab, files, [...self, ...web], flags);
      const r = replies(await lab.probe('a', { proto: 'tcp', ip: SELF_IP, port: 80, count: 3 }));
      expect(r.map((x) => [x.pod, x.port, x.peer])).toEqual(Array(3).fill(['a', 8080, NODE_IP]));
    });

    it('pod to pod through a Service keeps the client pod IP', async () => {
      await applyObjects(lab, files, [...self, ...web], flags);
      const r = replies(await lab.probe('c', { proto: 'tcp', ip: SELF_IP, port: 80, count: 3 }));
      expect(r.map((x) => [x.pod, x.peer])).toEqual(Array(3).fill(['a', C.ip]));
      expect(await srcNatted(SELF_IP)).toBe('');
    });

    it('node to ClusterIP is masqueraded given --cluster-cidr, and not without it', async () => {
      await applyObjects(lab, files, web, flags);
      const r = replies(await lab.probe('node', { proto: 'tcp', ip: WEB_IP, port: 80, count: 2 }));
      expect(r.map((x) => [x.pod, x.peer])).toEqual(Array(2).fill(['a', NODE_IP]));
      expect(await srcNatted(WEB_IP)).toContain(`dst=${WEB_IP}`);

      // Control: without a cluster CIDR nothing asks for masquerading, and the check above sees no SNAT. IPVS
      // mode is the exception, as upstream's: the node's connection leaves from the ClusterIP itself (bound
      // to kube-ipvs0), so it is masqueraded whatever the CIDR.
      await lab.resetNetfilter();
      await applyObjects(lab, files, web, { ...flags, clusterCidr: null });
      expect(podsHit(await lab.probe('node', { proto: 'tcp', ip: WEB_IP, port: 80, count: 2 }))).toEqual(['a', 'a']);
      if (backend === 'ipvs') expect(await srcNatted(WEB_IP)).toContain(`dst=${WEB_IP}`);
      else expect(await srcNatted(WEB_IP)).toBe('');
    });

    it('--masquerade-all masquerades pod to pod traffic too', async () => {
      await applyObjects(lab, files, [...self, ...web], { ...flags, masqueradeAll: true });
      const r = replies(await lab.probe('c', { proto: 'tcp', ip: WEB_IP, port: 80, count: 3 }));
      expect(r.map((x) => [x.pod, x.port, x.peer])).toEqual(Array(3).fill(['a', 8080, NODE_IP]));
      await flushConntrack(lab);
      const u = replies(await lab.probe('c', { proto: 'tcp', ip: SELF_IP, port: 80 }));
      expect(u[0]?.peer).toBe(NODE_IP);
    });
  });

  it('a second identical apply changes nothing', async () => {
    const all = [...web, ...named, ...pair, ...dns, ...empty, ...self];
    await applyObjects(lab, files, all, flags);
    const save = async (): Promise<string> => (backend === 'nftables' ? nftTable(lab) : lab.iptablesSave());
    const first = await save();
    expect(first).toContain(backend === 'nftables' ? '"default/empty:tcp"' : '"default/empty:tcp has no endpoints"');
    // The flavour under test is the one applied: endpoint chains only in kube-proxy's layout.
    expect(first.includes(':KUBE-SEP-')).toBe(flags.backend === undefined && flags.layout === 'kube-proxy');
    const set = await loopBackMembers(lab);
    if (flags.layout === 'flat') expect(set).toContain(`${A.ip},tcp:8080,${A.ip}`);
    if (backend === 'nftables') expect(first).toContain(`${A.ip} . ${A.ip} . tcp . 8080`);
    const ipvs = backend === 'ipvs' ? await ipvsState(lab) : '';
    if (backend === 'ipvs') expect(ipvs).toContain(`-a -t ${WEB_IP}:80 -r ${A.ip}:8080 -m -w 1`);
    else if (backend === 'nftables') expect(first).toContain(`${WEB_IP} . 80 . 0 : ${A.ip} . 8080`);
    else expect(first).toContain(`-d ${WEB_IP}/32`);
    await applyObjects(lab, files, all, flags);
    expect(await save()).toBe(first);
    expect(await loopBackMembers(lab)).toEqual(set);
    if (backend === 'ipvs') expect(await ipvsState(lab)).toBe(ipvs);
    // And the rules still work after the re-apply.
    expect(podsHit(await lab.probe('c', { proto: 'tcp', ip: NAMED_IP, port: 80 }))).toEqual(['b']);
  });
});
