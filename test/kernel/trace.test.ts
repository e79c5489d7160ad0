// `switchboard trace --live` on a real kernel: rules applied with `compile --apply` in the lab's node namespace,
// the trace run there too, and real packets (lab.probe) from the same sources. The endpoints the trace lists
// must be the pods the packets reach, REJECT must be refused, masquerade must be what the pods see; then a rule
// or element deleted by hand must change the trace as it changes where packets go (drift). No packet is sent by
// the trace itself.
import { beforeAll, describe, expect, it } from 'vitest';
import { endpointSlice, service, type EndpointSpec, type K8sObject } from '../support/objects.js';
import { CLI, FLAVOURS, NODE_NAME, type KernelBackend, type TempFiles, applyObjects, flushConntrack, outcomes, useKernelLab } from './helpers.js';
import { type Lab, mirrorIPv6 } from './lab/index.js';

const A = { name: 'a', ip: '10.244.1.2', tcpPorts: [8080], udpPorts: [5353] };
const B = { name: 'b', ip: '10.244.1.3', tcpPorts: [8080], udpPorts: [5353] };
const C = { name: 'c', ip: '10.244.2.2' }; // a client pod
const IP_OF: Record<string, string> = { a: A.ip, b: B.ip, [mirrorIPv6(A.ip)]: 'a', [mirrorIPv6(B.ip)]: 'b' };
const DUAL = { nodeIp: '10.0.0.10,fd00:10::10', clusterCidr: '10.244.0.0/16,fd00:10:244::/48' };

const local = (ip: string): EndpointSpec => ({ ip, nodeName: NODE_NAME });
const PAIR = '10.96.7.1';
const DNS = '10.96.7.2';
const EMPTY = '10.96.7.3';
const PAIR6 = 'fd00:10:96::7:1';

const objects: K8sObject[] = [
  service({ name: 'pair', clusterIP: PAIR, clusterIPs: [PAIR, PAIR6], ports: [{ name: 'http', port: 80, targetPort: 8080 }] }),
  endpointSlice({ name: 'pair-v4', service: 'pair', ports: [{ name: 'http', port: 8080 }], endpoints: [local(A.ip), local(B.ip)] }),
  endpointSlice({ name: 'pair-v6', service: 'pair', addressType: 'IPv6', ports: [{ name: 'http', port: 8080 }], endpoints: [local(mirrorIPv6(A.ip)), local(mirrorIPv6(B.ip))] }),
  service({ name: 'dns', clusterIP: DNS, ports: [{ name: 'dns', port: 53, protocol: 'UDP', targetPort: 5353 }] }),
  endpointSlice({ name: 'dns-1', service: 'dns', ports: [{ name: 'dns', port: 5353, protocol: 'UDP' }], endpoints: [local(A.ip)] }),
  service({ name: 'empty', clusterIP: EMPTY, ports: [{ port: 80, targetPort: 8080 }] }),
];

interface TraceJson {
  service: string | null;
  kind: string | null;
  verdict: string;
  masquerade: boolean;
  endpoints: { ip: string; port: number; probability: number; masquerade: boolean }[];
  notes: string[];
}

/** `switchboard trace --live` inside the node namespace. */
async function trace(lab: Lab, backend: KernelBackend, to: string, from?: string): Promise<{ exitCode: number; out: TraceJson }> {
  const args = [CLI, 'trace', '--live', '--backend', backend, '--to', to, '-o', 'json', ...(from === undefined ? [] : ['--from', from])];
  const r = await lab.exec('node', process.execPath, args, { reject: false });
  if (r.exitCode !== 0 && r.exitCode !== 3) throw new Error(`trace exited ${String(r.exitCode)}: ${r.stderr}`);
  return { exitCode: r.exitCode ?? -1, out: JSON.parse(r.stdout) as TraceJson };
}

/** The endpoint addresses a trace lists. */
const traced = (t: TraceJson): string[] => t.endpoints.map((e) => e.ip).sort();

/** The pods' addresses that `count` real connections reached (the rest as their errors). */
async function reached(lab: Lab, from: string, proto: 'tcp' | 'udp', ip: string, port: number, count: number): Promise<{ ips: string[]; errors: string[] }> {
  await flushConntrack(lab);
  const results = await lab.probe(from, { proto, ip, port, count, timeoutMs: 1500 });
  const ips = new Set<string>();
  const errors: string[] = [];
  for (const o of outcomes(results)) {
    if (o.startsWith('ok:')) {
      const pod = o.slice(3);
      ips.add(ip.includes(':') ? mirrorIPv6(IP_OF[pod]!) : IP_OF[pod]!);
    } else errors.push(o);
  }
  return { ips: [...ips].sort(), errors };
}

describe.each(FLAVOURS)('trace --live on a real kernel ($name)', ({ backend, flags: base }) => {
  const ctx = useKernelLab([A, B, C]);
  let lab: Lab;
  let files: TempFiles;
  const flags = { ...base, ...DUAL };
  beforeAll(() => {
    ({ lab, files } = ctx);
  });

  it('lists the endpoints real connections reach, from a pod and from the node, TCP, UDP and IPv6; REJECT is refused', async () => {
    await applyObjects(lab, files, objects, flags);

    const pod = await trace(lab, backend, `${PAIR}:80`, C.ip);
    expect(pod.exitCode).toBe(0);
    expect(pod.out).toMatchObject({ service: 'default/pair:http', kind: 'clusterIP', verdict: 'dnat', masquerade: false });
    expect(pod.out.endpoints.map((e) => [e.ip, e.port, e.probability])).toEqual([
      [A.ip, 8080, 0.5],
      [B.ip, 8080, 0.5],
    ]);
    expect(await reached(lab, 'c', 'tcp', PAIR, 80, 24)).toEqual({ ips: traced(pod.out), errors: [] });

    // From the node (its node IP by default): masqueraded, the same endpoints.
    const node = await trace(lab, backend, `${PAIR}:80`);
    expect(node.out).toMatchObject({ verdict: 'dnat', masquerade: true });
    expect(await reached(lab, 'node', 'tcp', PAIR, 80, 24)).toEqual({ ips: traced(node.out), errors: [] });

    const udp = await trace(lab, backend, `${DNS}:53/udp`, C.ip);
    expect(udp.out).toMatchObject({ service: 'default/dns:dns', verdict: 'dnat', endpoints: [{ ip: A.ip, port: 5353, probability: 1 }] });
    expect(await reached(lab, 'c', 'udp', DNS, 53, 3)).toEqual({ ips: traced(udp.out), errors: [] });

    const v6 = await trace(lab, backend, `[${PAIR6}]:80`, mirrorIPv6(C.ip));
    expect(v6.out).toMatchObject({ service: 'default/pair:http', verdict: 'dnat' });
    expect(await reached(lab, 'c', 'tcp', PAIR6, 80, 24)).toEqual({ ips: traced(v6.out), errors: [] });

    const empty = await trace(lab, backend, `${EMPTY}:80`, C.ip);
    expect(empty.exitCode).toBe(3);
    expect(empty.out).toMatchObject({ service: 'default/empty', verdict: 'reject', endpoints: [] });
    expect(await reached(lab, 'c', 'tcp', EMPTY, 80, 2)).toEqual({ ips: [], errors: ['refused', 'refused'] });
  });

  it('says which endpoint a hairpin masquerades, as the pods see it', async () => {
    await applyObjects(lab, files, objects, flags);
    const t = await trace(lab, backend, `${PAIR}:80`, A.ip);
    expect(t.out.endpoints.map((e) => [e.ip, e.masquerade])).toEqual([
      [A.ip, true],
      [B.ip, false],
    ]);
    await flushConntrack(lab);
    const peers = new Map<string, Set<string>>();
    for (const r of await lab.probe('a', { proto: 'tcp', ip: PAIR, port: 80, count: 24 })) {
      if (!r.ok) throw new Error(r.error);
      const s = peers.get(r.reply.pod) ?? new Set();
      s.add(r.reply.peer);
      peers.set(r.reply.pod, s);
    }
    // Masqueraded: the pod sees the node's address; not: its own.
    expect(peers.get('a')).toEqual(new Set([lab.nodeIP]));
    expect(peers.get('b')).toEqual(new Set([A.ip]));
  });

  it('changes when a rule or element is deleted by hand, as the packets do', async () => {
    await applyObjects(lab, files, objects, flags);
    const before = await trace(lab, backend, `${PAIR}:80`, C.ip);
    expect(traced(before.out)).toEqual([A.ip, B.ip]);
    await deleteEndpointByHand(lab, backend, A.ip);
    const after = await trace(lab, backend, `${PAIR}:80`, C.ip);
    expect(after.exitCode).toBe(0);
    expect(after.out.endpoints.map((e) => [e.ip, e.probability])).toEqual([[B.ip, 1]]);
    const real = await reached(lab, 'c', 'tcp', PAIR, 80, 24);
    expect(real.ips).toEqual([B.ip]);
    if (backend === 'nftables') {
      // The map lost index 0 of 2: half the connections find no element and are rejected by cluster-ips-check.
      expect(after.out.notes).toContain('50% of new connections are rejected (see the path), the rest reach the endpoints listed');
      expect(real.errors.length).toBeGreaterThan(0);
      expect(new Set(real.errors)).toEqual(new Set(['refused']));
    } else {
      expect(after.out.notes).toEqual([]);
      expect(real.errors).toEqual([]);
    }
  });
});

/**
 * Removes A (the first endpoint) from the Service behind the agent's back: iptables, the policy chain's rule for
 * it (the `statistic` one, so B's unconditional rule takes every connection); nftables, A's element of the
 * endpoints map (index 0, so `numgen random mod 2` finds nothing half the time); IPVS, A's real server.
 */
async function deleteEndpointByHand(lab: Lab, backend: KernelBackend, ip: string): Promise<void> {
  if (backend === 'nftables') {
    const r = await lab.exec('node', 'nft', ['delete', 'element', 'ip', 'kube-proxy', 'service-endpoints-tcp', `{ ${PAIR} . 80 . 0 }`], { reject: false });
    if (r.exitCode !== 0) throw new Error(`nft delete element: ${r.stderr}`);
    return;
  }
  if (backend === 'ipvs') {
    await lab.exec('node', 'ipvsadm', ['-d', '-t', `${PAIR}:80`, '-r', `${ip}:8080`]);
    return;
  }
  // The KUBE-SVC rule naming B (kube-proxy layout: a jump to its KUBE-SEP chain; flat: its DNAT).
  const save = await lab.exec('node', 'iptables-save', ['-t', 'nat']);
  const line = save.stdout.split('\n').find((l) => l.startsWith('-A KUBE-SVC-') && l.includes(`"default/pair:http -> ${ip}:8080"`));
  if (line === undefined) throw new Error(`no KUBE-SVC rule for ${ip} in:\n${save.stdout}`);
  await lab.iptablesRestore(`*nat\n${line.replace(/^-A /, '-D ')}\nCOMMIT\n`);
}
