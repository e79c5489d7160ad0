// Upstream's packet-flow tables (nftables/proxier_test.go @81810de6, as the external-traffic reference §10.1
// quotes them; TestClusterIPGeneral from the same file), traced over the table our nftables backend leaves in
// the fake kernel after a full sync of the same input. Output is every endpoint a new connection may reach (or
// DROP/REJECT), masq whether nat postrouting masquerades it. Where the nft tables equal the iptables ones, the
// rows are upstream-flows-iptables.test.ts's, less its localhost NodePort rows (nftables mode has none).
//
// Rows that differ from upstream, deliberately (docs/backends/nftables.md, "Differences from kube-proxy"):
//  - TestClusterIPGeneral "packet to unallocated cluster ip": upstream DROP, ours "" (no "Drop traffic to
//    unallocated ClusterIPs" rule: Switchboard does not watch ServiceCIDRs).
//  - TestTracePacket is upstream's iptables tracer test; its "ACCEPT (NodePortHealthCheck)" row is "" in
//    nftables mode, which (upstream too) has no rule accepting the health-check NodePort.
import { describe, expect, it } from 'vitest';
import { NftablesCompiler } from '../../src/backends/nftables/compiler.js';
import { type NftablesOptions, defaultNftablesOptions, ourTable } from '../../src/backends/nftables/options.js';
import { load } from '../support/compile.js';
import { FakeNft, type FakeTableView } from '../support/fakes/nft.js';
import { TraceInputError } from '../../src/diagnose/trace/types.js';
import { traceNftFlow as tracePacket } from '../support/upstream-trace.js';
import { endpointSlice, service, type EndpointSpec, type K8sObject, type ServiceSpec } from '../support/objects.js';
import { OVERALL } from '../support/upstream-overall.js';

/** upstream's fake node: 192.168.0.2 (2001:db8::1) primary, 192.168.1.2, 192.168.99.11 (2001:db8:1::2) on eth0 too, loopback. */
const LOCAL_IPS = ['127.0.0.1', '192.168.0.2', '192.168.1.2', '192.168.99.11', '::1', '2001:db8::1', '2001:db8:1::2'];
const NODE = 'test-node';

type Proto = 'tcp' | 'udp' | 'sctp';
type Row = readonly [name: string, src: string, dst: string, dport: number, output: string, masq?: boolean | undefined, proto?: Proto];

/** The table after a full sync, as the fake kernel holds it (IPv6: upstream's v6 node IP and pod CIDR). */
function table(objects: readonly K8sObject[], overrides: Partial<NftablesOptions> = {}): FakeTableView {
  const family = overrides.family ?? 'IPv4';
  const loaded = load(objects, NODE);
  loaded.state.setNodeIPs(family === 'IPv4' ? ['192.168.0.2'] : ['2001:db8::1']);
  const compiler = new NftablesCompiler(defaultNftablesOptions({ clusterCidr: family === 'IPv4' ? '10.0.0.0/8' : 'fd00:10::/64', ...overrides }));
  compiler.update(loaded.state, loaded.state.takeChanges());
  const plan = compiler.planFull();
  const nft = new FakeNft();
  nft.apply({ table: ourTable(family), ops: [...plan.ops] });
  plan.commit();
  const view = nft.view(ourTable(family));
  if (view === undefined) throw new Error('no table');
  return view;
}

function checkFlows(view: FakeTableView, rows: readonly Row[]): void {
  const matched: string[] = [];
  const got = rows.map(([name, src, dst, dport, , masq, proto]) => {
    const t = tracePacket(view, { src, dst, dport, ...(proto !== undefined ? { proto } : {}) }, LOCAL_IPS);
    matched.push(`${name}:\n  ${t.matched.join('\n  ')}`);
    // upstream does not check masq for DROP, REJECT or no match.
    return [name, t.output, masq === undefined ? undefined : t.masq];
  });
  expect(got, `rules matched:\n${matched.join('\n')}`).toEqual(rows.map(([name, , , , output, masq]) => [name, output, masq]));
}

function svc(spec: Partial<ServiceSpec> & { name: string; clusterIP: string }, eps: EndpointSpec[]): K8sObject[] {
  const ns = spec.namespace ?? 'ns1';
  return [
    service({ ports: [{ name: 'p80', port: 80, nodePort: 3001 }], type: 'LoadBalancer', ...spec, namespace: ns }),
    ...(eps.length > 0 ? [endpointSlice({ namespace: ns, name: `${spec.name}-1`, service: spec.name, ports: [{ name: 'p80', port: 80 }], endpoints: eps })] : []),
  ];
}
const at = (ip: string, nodeName?: string, cond: { ready?: boolean; serving?: boolean; terminating?: boolean } = {}): EndpointSpec => ({
  ip,
  ...(nodeName !== undefined ? { nodeName } : {}),
  ...cond,
});

describe('upstream flow tables over the nftables rules', () => {
  it('TestTracePacket rows (over TestOverallNFTablesRules)', () => {
    checkFlows(table(OVERALL), [
      ['no match', '10.0.0.2', '10.0.0.3', 80, ''],
      ['single endpoint', '10.0.0.2', '172.30.0.41', 80, '10.180.0.1:80', false],
      ['multiple endpoints', '10.0.0.2', '172.30.0.44', 80, '10.180.0.4:80, 10.180.0.5:80', false],
      ['LOCAL, KUBE-MARK-MASQ', '192.168.0.2', '192.168.99.22', 80, '10.180.0.2:80', true],
      ['DROP', '203.0.113.2', '192.168.99.22', 80, 'DROP'],
      // iptables: ACCEPT; nftables mode has no health-check NodePort rule.
      ['(ACCEPT in iptables) NodePortHealthCheck', '192.168.0.2', '192.168.0.2', 30000, ''],
      ['REJECT', '10.0.0.2', '172.30.0.46', 80, 'REJECT'],
    ]);
  });

  it('TestNoEndpointsReject', () => {
    const view = table(svc({ name: 'svc1', clusterIP: '172.30.0.41', externalIPs: ['192.168.99.11'], loadBalancerIngress: [{ ip: '1.2.3.4' }] }, []));
    checkFlows(view, [
      ['pod to cluster IP with no endpoints', '10.0.0.2', '172.30.0.41', 80, 'REJECT'],
      ['external to external IP with no endpoints', '203.0.113.2', '192.168.99.11', 80, 'REJECT'],
      ['pod to NodePort with no endpoints', '10.0.0.2', '192.168.0.2', 3001, 'REJECT'],
      ['external to NodePort with no endpoints', '203.0.113.2', '192.168.0.2', 3001, 'REJECT'],
      ['pod to LoadBalancer IP with no endpoints', '10.0.0.2', '1.2.3.4', 80, 'REJECT'],
      ['external to LoadBalancer IP with no endpoints', '203.0.113.2', '1.2.3.4', 80, 'REJECT'],
    ]);
  });

  it('TestClusterIPGeneral', () => {
    const objects: K8sObject[] = [
      service({ namespace: 'ns1', name: 'svc1', clusterIP: '172.30.0.41', ports: [{ name: 'http', port: 80 }] }),
      endpointSlice({ namespace: 'ns1', name: 'svc1-1', service: 'svc1', ports: [{ name: 'http', port: 80 }], endpoints: [at('10.180.0.1', NODE)] }),
      service({
        namespace: 'ns2',
        name: 'svc2',
        clusterIP: '172.30.0.42',
        ports: [
          { name: 'http', port: 80 },
          { name: 'https', port: 443, targetPort: 8443 },
          { name: 'dns-udp', port: 53, protocol: 'UDP' },
          { name: 'dns-tcp', port: 53, targetPort: 5353 },
          { name: 'dns-sctp', port: 53, protocol: 'SCTP' },
        ],
      }),
      endpointSlice({
        namespace: 'ns2',
        name: 'svc2-1',
        service: 'svc2',
        ports: [
          { name: 'http', port: 80 },
          { name: 'https', port: 8443 },
          { name: 'dns-udp', port: 53, protocol: 'UDP' },
          { name: 'dns-tcp', port: 5353 },
          { name: 'dns-sctp', port: 53, protocol: 'SCTP' },
        ],
        endpoints: [at('10.180.0.1', NODE), at('10.180.2.1', 'node2')],
      }),
    ];
    checkFlows(table(objects), [
      ['simple clusterIP', '10.180.0.2', '172.30.0.41', 80, '10.180.0.1:80', false],
      ['hairpin to cluster IP', '10.180.0.1', '172.30.0.41', 80, '10.180.0.1:80', true],
      ['clusterIP with multiple endpoints', '10.180.0.2', '172.30.0.42', 80, '10.180.0.1:80, 10.180.2.1:80', false],
      ['clusterIP with TargetPort', '10.180.0.2', '172.30.0.42', 443, '10.180.0.1:8443, 10.180.2.1:8443', false],
      ['clusterIP with TCP, UDP, and SCTP on same port (TCP)', '10.180.0.2', '172.30.0.42', 53, '10.180.0.1:5353, 10.180.2.1:5353', false, 'tcp'],
      ['clusterIP with TCP, UDP, and SCTP on same port (UDP)', '10.180.0.2', '172.30.0.42', 53, '10.180.0.1:53, 10.180.2.1:53', false, 'udp'],
      ['clusterIP with TCP, UDP, and SCTP on same port (SCTP)', '10.180.0.2', '172.30.0.42', 53, '10.180.0.1:53, 10.180.2.1:53', false, 'sctp'],
      ['TCP-only port does not match UDP traffic', '10.180.0.2', '172.30.0.42', 80, 'REJECT', undefined, 'udp'],
      ["svc1 does not accept svc2's ports", '10.180.0.2', '172.30.0.41', 443, 'REJECT'],
      // upstream: DROP (its "Drop traffic to unallocated ClusterIPs" rule over the service CIDRs; we have none).
      ['packet to unallocated cluster ip', '10.180.0.2', '172.30.0.50', 80, ''],
    ]);
  });

  it('TestLoadBalancer', () => {
    const ep = '10.180.0.1:80';
    const view = table(
      svc(
        {
          name: 'svc1',
          clusterIP: '172.30.0.41',
          loadBalancerIngress: [{ ip: '1.2.3.4' }, { ip: '5.6.7.8' }],
          loadBalancerSourceRanges: ['192.168.0.0/24', ' 203.0.113.0/25'],
        },
        [at('10.180.0.1')],
      ),
    );
    checkFlows(view, [
      ['pod to cluster IP', '10.0.0.2', '172.30.0.41', 80, ep, false],
      ['external to nodePort', '203.0.113.2', '192.168.0.2', 3001, ep, true],
      ['nodePort bypasses LoadBalancerSourceRanges', '203.0.113.130', '192.168.0.2', 3001, ep, true],
      ['accepted external to LB1', '203.0.113.2', '1.2.3.4', 80, ep, true],
      ['accepted external to LB2', '203.0.113.2', '5.6.7.8', 80, ep, true],
      ['blocked external to LB1', '203.0.113.130', '1.2.3.4', 80, 'DROP'],
      ['blocked external to LB2', '203.0.113.130', '5.6.7.8', 80, 'DROP'],
      ['pod to LB1 (blocked by LoadBalancerSourceRanges)', '10.0.0.2', '1.2.3.4', 80, 'DROP'],
      ['pod to LB2 (blocked by LoadBalancerSourceRanges)', '10.0.0.2', '5.6.7.8', 80, 'DROP'],
      ['node to LB1 (allowed by LoadBalancerSourceRanges)', '192.168.0.2', '1.2.3.4', 80, ep, true],
      ['node to LB2 (allowed by LoadBalancerSourceRanges)', '192.168.0.2', '5.6.7.8', 80, ep, true],
      ['same node to LB1, SNATted to LB1 (implicitly allowed)', '1.2.3.4', '1.2.3.4', 80, ep, true],
      ['same node to LB2, SNATted to LB2 (implicitly allowed)', '5.6.7.8', '5.6.7.8', 80, ep, true],
    ]);
  });

  describe('TestNodePorts (IPv4)', () => {
    const objects = svc({ name: 'svc1', clusterIP: '172.30.0.41', type: 'NodePort' }, [at('10.180.0.1'), at('10.180.2.1', NODE)]);
    const both = '10.180.0.1:80, 10.180.2.1:80';
    // nodePortAddresses as upstream resolves its CIDRs against its fake interfaces; nil is the primary node IP.
    it.each([
      ['ipv4', {}, false],
      ['ipv4, multiple nodeport-addresses', { nodePortAddresses: ['192.168.0.2', '192.168.1.2'] }, true],
    ] as const)('%s', (_name, overrides, allowAltNodeIP) => {
      checkFlows(table(objects, overrides), [
        ['pod to cluster IP', '10.0.0.2', '172.30.0.41', 80, both, false],
        ['external to nodePort', '203.0.113.2', '192.168.0.2', 3001, both, true],
        ['node to nodePort', '192.168.0.2', '192.168.0.2', 3001, both, true],
        allowAltNodeIP
          ? ['external to nodePort on secondary IP', '203.0.113.2', '192.168.1.2', 3001, both, true]
          : ['secondary nodeIP ignores NodePorts', '203.0.113.2', '192.168.1.2', 3001, ''],
      ]);
    });
  });

  describe('TestNodePorts (IPv6)', () => {
    const v6 = (o: K8sObject): K8sObject => (o['kind'] === 'EndpointSlice' ? { ...o, addressType: 'IPv6' } : o);
    const objects = svc({ name: 'svc1', clusterIP: 'fd00:172:30::41', type: 'NodePort' }, [at('fd00:10:180::1'), at('fd00:10:180::2:1', NODE)]).map(v6);
    const both = '[fd00:10:180::1]:80, [fd00:10:180::2:1]:80';
    it.each([
      ['ipv6', {}, false],
      ['ipv6, multiple nodeport-addresses', { nodePortAddresses: ['2001:db8::1', '2001:db8:1::2'] }, true],
    ] as const)('%s', (_name, overrides, allowAltNodeIP) => {
      checkFlows(table(objects, { family: 'IPv6', ...overrides }), [
        ['pod to cluster IP', 'fd00:10::2', 'fd00:172:30::41', 80, both, false],
        ['external to nodePort', '2600:5200::1', '2001:db8::1', 3001, both, true],
        ['node to nodePort', '2001:db8::1', '2001:db8::1', 3001, both, true],
        allowAltNodeIP
          ? ['external to nodePort on secondary IP', '2600:5200::1', '2001:db8:1::2', 3001, both, true]
          : ['secondary nodeIP ignores NodePorts', '2600:5200::1', '2001:db8:1::2', 3001, ''],
      ]);
    });
  });

  describe('TestExternalTrafficPolicyLocal and ...Cluster', () => {
    const objects = (etp: 'Local' | 'Cluster') =>
      svc(
        {
          name: 'svc1',
          clusterIP: '172.30.0.41',
          externalIPs: ['192.168.99.11'],
          loadBalancerIngress: [{ ip: '1.2.3.4' }],
          externalTrafficPolicy: etp,
          ...(etp === 'Local' ? { healthCheckNodePort: 30000 } : {}),
        },
        [at('10.180.0.1'), at('10.180.2.1', NODE)],
      );
    const both = '10.180.0.1:80, 10.180.2.1:80';
    it('Local', () => {
      checkFlows(table(objects('Local')), [
        ['pod to cluster IP hits both endpoints, unmasqueraded', '10.0.0.2', '172.30.0.41', 80, both, false],
        ['pod to external IP hits both endpoints, unmasqueraded', '10.0.0.2', '192.168.99.11', 80, both, false],
        ['external to external IP hits only local endpoint, unmasqueraded', '203.0.113.2', '192.168.99.11', 80, '10.180.2.1:80', false],
        ['pod to LB IP hits only both endpoints, unmasqueraded', '10.0.0.2', '1.2.3.4', 80, both, false],
        ['external to LB IP hits only local endpoint, unmasqueraded', '203.0.113.2', '1.2.3.4', 80, '10.180.2.1:80', false],
        ['pod to NodePort hits both endpoints, unmasqueraded', '10.0.0.2', '192.168.0.2', 3001, both, false],
        ['external to NodePort hits only local endpoint, unmasqueraded', '203.0.113.2', '192.168.0.2', 3001, '10.180.2.1:80', false],
      ]);
    });
    it('Cluster', () => {
      checkFlows(table(objects('Cluster')), [
        ['pod to cluster IP hits both endpoints, unmasqueraded', '10.0.0.2', '172.30.0.41', 80, both, false],
        ['pod to external IP hits both endpoints, masqueraded', '10.0.0.2', '192.168.99.11', 80, both, true],
        ['external to external IP hits both endpoints, masqueraded', '203.0.113.2', '192.168.99.11', 80, both, true],
        ['pod to LB IP hits both endpoints, masqueraded', '10.0.0.2', '1.2.3.4', 80, both, true],
        ['external to LB IP hits both endpoints, masqueraded', '203.0.113.2', '1.2.3.4', 80, both, true],
        ['pod to NodePort hits both endpoints, masqueraded', '10.0.0.2', '192.168.0.2', 3001, both, true],
        ['external to NodePort hits both endpoints, masqueraded', '203.0.113.2', '192.168.0.2', 3001, both, true],
      ]);
    });
  });

  describe('TestInternalTrafficPolicy', () => {
    const objects = (itp: 'Cluster' | 'Local', eps: EndpointSpec[]) =>
      [service({ namespace: 'ns1', name: 'svc1', clusterIP: '172.30.1.1', ports: [{ name: '', port: 80 }], internalTrafficPolicy: itp })].concat(
        eps.length > 0 ? [endpointSlice({ namespace: 'ns1', name: 'svc1-1', service: 'svc1', ports: [{ port: 80 }], endpoints: eps })] : [],
      );
    it.each([
      ['internalTrafficPolicy is cluster', 'Cluster', [at('10.0.1.1', NODE), at('10.0.1.2', 'node1'), at('10.0.1.3', 'node2')], '10.0.1.1:80, 10.0.1.2:80, 10.0.1.3:80'],
      ['internalTrafficPolicy is local and there is one local endpoint', 'Local', [at('10.0.1.1', NODE), at('10.0.1.2', 'node1'), at('10.0.1.3', 'node2')], '10.0.1.1:80'],
      ['internalTrafficPolicy is local and there are multiple local endpoints', 'Local', [at('10.0.1.1', NODE), at('10.0.1.2', NODE), at('10.0.1.3', 'node2')], '10.0.1.1:80, 10.0.1.2:80'],
      ['internalTrafficPolicy is local and there are no local endpoints', 'Local', [at('10.0.1.1', 'node0'), at('10.0.1.2', 'node1'), at('10.0.1.3', 'node2')], 'DROP'],
      ['endpoints deleted', 'Local', [], 'REJECT'],
    ] as const)('%s', (_n, itp, eps, output) => {
      checkFlows(table(objects(itp, [...eps])), [['pod to ClusterIP', '10.0.0.2', '172.30.1.1', 80, output, output.includes(':') ? false : undefined]]);
    });
  });

  describe('TestInternalExternalMasquerade', () => {
    const objects = [
      ...svc({ name: 'svc1', clusterIP: '172.30.0.41', healthCheckNodePort: 30001, loadBalancerIngress: [{ ip: '1.2.3.4' }] }, [at('10.180.0.1', NODE), at('10.180.1.1', 'remote')]),
      ...svc(
        { namespace: 'ns2', name: 'svc2', clusterIP: '172.30.0.42', ports: [{ name: 'p80', port: 80, nodePort: 3002 }], healthCheckNodePort: 30002, externalTrafficPolicy: 'Local', loadBalancerIngress: [{ ip: '5.6.7.8' }] },
        [at('10.180.0.2', NODE), at('10.180.1.2', 'remote')],
      ),
      ...svc(
        { namespace: 'ns3', name: 'svc3', clusterIP: '172.30.0.43', ports: [{ name: 'p80', port: 80, nodePort: 3003 }], healthCheckNodePort: 30003, internalTrafficPolicy: 'Local', loadBalancerIngress: [{ ip: '9.10.11.12' }] },
        [at('10.180.0.3', NODE), at('10.180.1.3', 'remote')],
      ),
    ];
    const s1 = '10.180.0.1:80, 10.180.1.1:80';
    const s2 = '10.180.0.2:80, 10.180.1.2:80';
    const s3 = '10.180.0.3:80, 10.180.1.3:80';
    const base: Row[] = [
      ['pod to ClusterIP', '10.0.0.2', '172.30.0.41', 80, s1, false],
      ['pod to NodePort', '10.0.0.2', '192.168.0.2', 3001, s1, true],
      ['pod to LB', '10.0.0.2', '1.2.3.4', 80, s1, true],
      ['node to ClusterIP', '192.168.0.2', '172.30.0.41', 80, s1, true],
      ['node to NodePort', '192.168.0.2', '192.168.0.2', 3001, s1, true],
      ['node to LB', '192.168.0.2', '1.2.3.4', 80, s1, true],
      ['external to ClusterIP', '203.0.113.2', '172.30.0.41', 80, s1, true],
      ['external to NodePort', '203.0.113.2', '192.168.0.2', 3001, s1, true],
      ['external to LB', '203.0.113.2', '1.2.3.4', 80, s1, true],
      ['pod to ClusterIP with eTP:Local', '10.0.0.2', '172.30.0.42', 80, s2, false],
      ['pod to NodePort with eTP:Local', '10.0.0.2', '192.168.0.2', 3002, s2, false],
      ['pod to LB with eTP:Local', '10.0.0.2', '5.6.7.8', 80, s2, false],
      ['node to ClusterIP with eTP:Local', '192.168.0.2', '172.30.0.42', 80, s2, true],
      // (sic) upstream's row uses svc1's NodePort.
      ['node to NodePort with eTP:Local', '192.168.0.2', '192.168.0.2', 3001, s1, true],
      ['node to LB with eTP:Local', '192.168.0.2', '5.6.7.8', 80, s2, true],
      ['external to ClusterIP with eTP:Local', '203.0.113.2', '172.30.0.42', 80, s2, true],
      ['external to NodePort with eTP:Local', '203.0.113.2', '192.168.0.2', 3002, '10.180.0.2:80', false],
      ['external to LB with eTP:Local', '203.0.113.2', '5.6.7.8', 80, '10.180.0.2:80', false],
      ['pod to ClusterIP with iTP:Local', '10.0.0.2', '172.30.0.43', 80, '10.180.0.3:80', false],
      ['pod to NodePort with iTP:Local', '10.0.0.2', '192.168.0.2', 3003, s3, true],
      ['pod to LB with iTP:Local', '10.0.0.2', '9.10.11.12', 80, s3, true],
      ['node to ClusterIP with iTP:Local', '192.168.0.2', '172.30.0.43', 80, '10.180.0.3:80', true],
      ['node to NodePort with iTP:Local', '192.168.0.2', '192.168.0.2', 3003, s3, true],
      ['node to LB with iTP:Local', '192.168.0.2', '9.10.11.12', 80, s3, true],
      ['external to ClusterIP with iTP:Local', '203.0.113.2', '172.30.0.43', 80, '10.180.0.3:80', true],
      ['external to NodePort with iTP:Local', '203.0.113.2', '192.168.0.2', 3003, s3, true],
      ['external to LB with iTP:Local', '203.0.113.2', '9.10.11.12', 80, s3, true],
    ];
    const override = (rows: Row[], changes: Record<string, { output?: string; masq?: boolean }>): Row[] =>
      rows.map(([n, s, d, p, o, m]) => [n, s, d, p, changes[n]?.output ?? o, changes[n]?.masq ?? m] as const);
    const noDetector = {
      'node to ClusterIP': { masq: false },
      'node to ClusterIP with eTP:Local': { masq: false },
      'node to ClusterIP with iTP:Local': { masq: false },
      'external to ClusterIP': { masq: false },
      'external to ClusterIP with eTP:Local': { masq: false },
      'external to ClusterIP with iTP:Local': { masq: false },
      'pod to NodePort with eTP:Local': { output: '10.180.0.2:80' },
      'pod to LB with eTP:Local': { output: '10.180.0.2:80' },
    };
    const all = { 'pod to ClusterIP': { masq: true }, 'pod to ClusterIP with eTP:Local': { masq: true }, 'pod to ClusterIP with iTP:Local': { masq: true } };
    it('base', () => checkFlows(table(objects), base));
    it('no LocalTrafficDetector', () => checkFlows(table(objects, { clusterCidr: undefined }), override(base, noDetector)));
    it('masqueradeAll', () => checkFlows(table(objects, { masqueradeAll: true }), override(base, all)));
    it('masqueradeAll, no LocalTrafficDetector', () => {
      // upstream's overrides: masqueradeAll's three and the no-detector outputs (masqueradeAll still masquerades
      // node and external ClusterIP traffic).
      const outputs = { 'pod to NodePort with eTP:Local': { output: '10.180.0.2:80' }, 'pod to LB with eTP:Local': { output: '10.180.0.2:80' } };
      checkFlows(table(objects, { masqueradeAll: true, clusterCidr: undefined }), override(base, { ...all, ...outputs }));
    });
  });

  describe('TestTerminatingEndpointsTrafficPolicyLocal and ...Cluster', () => {
    const T = { ready: true, serving: true, terminating: false };
    const ST = { ready: false, serving: true, terminating: true };
    const X = { ready: false, serving: false, terminating: true };
    const objects = (etp: 'Local' | 'Cluster', eps: EndpointSpec[]) =>
      svc(
        {
          name: 'svc1',
          clusterIP: '172.30.1.1',
          ports: [{ name: '', port: 80 }],
          externalTrafficPolicy: etp,
          ...(etp === 'Local' ? { healthCheckNodePort: 30000 } : {}),
          loadBalancerIngress: [{ ip: '1.2.3.4' }],
        },
        [],
      ).concat(eps.length > 0 ? [endpointSlice({ namespace: 'ns1', name: 'svc1-1', service: 'svc1', ports: [{ port: 80 }], endpoints: eps })] : []);
    const flows = (pod: string, ext: string, masqExt?: boolean): Row[] => [
      ['pod to clusterIP', '10.0.0.2', '172.30.1.1', 80, pod, pod.includes(':') ? false : undefined],
      ['external to LB', '203.0.113.2', '1.2.3.4', 80, ext, ext.includes(':') ? masqExt : undefined],
    ];
    it.each([
      ['ready endpoints exist', [at('10.0.1.1', NODE, T), at('10.0.1.2', NODE, T), at('10.0.1.3', NODE, ST), at('10.0.1.4', NODE, X), at('10.0.1.5', 'node-1', T)], '10.0.1.1:80, 10.0.1.2:80, 10.0.1.5:80', '10.0.1.1:80, 10.0.1.2:80'],
      ['only terminating endpoints exist', [at('10.0.1.2', NODE, ST), at('10.0.1.3', NODE, ST), at('10.0.1.4', NODE, X), at('10.0.1.5', 'node-1', T)], '10.0.1.5:80', '10.0.1.2:80, 10.0.1.3:80'],
      ['terminating endpoints on remote node', [at('10.0.1.5', 'node-1', ST)], '10.0.1.5:80', 'DROP'],
      ['no usable endpoints on any node', [at('10.0.1.5', NODE, X), at('10.0.1.6', 'node-1', X)], 'REJECT', 'REJECT'],
      ['endpoints deleted', [], 'REJECT', 'REJECT'],
    ] as const)('Local: %s', (_n, eps, pod, ext) => {
      checkFlows(table(objects('Local', [...eps])), flows(pod, ext, false));
    });
    it.each([
      ['ready endpoints exist', [at('10.0.1.1', NODE, T), at('10.0.1.2', NODE, T), at('10.0.1.3', 'another-node', ST), at('10.0.1.4', 'another-node', X), at('10.0.1.5', 'another-node', T)], '10.0.1.1:80, 10.0.1.2:80, 10.0.1.5:80'],
      ['only terminating endpoints exist', [at('10.0.1.2', NODE, ST), at('10.0.1.3', NODE, ST), at('10.0.1.4', 'another-node', X), at('10.0.1.5', 'another-node', ST)], '10.0.1.2:80, 10.0.1.3:80, 10.0.1.5:80'],
      ['terminating endpoints on remote node', [at('10.0.1.5', 'node-1', ST)], '10.0.1.5:80'],
      ['no usable endpoints on any node', [at('10.0.1.5', NODE, X), at('10.0.1.6', 'node-1', X)], 'REJECT'],
      ['endpoints deleted', [], 'REJECT'],
    ] as const)('Cluster: %s', (_n, eps, both) => {
      checkFlows(table(objects('Cluster', [...eps])), flows(both, both, true));
    });
  });
});

describe('the nftables tracer', () => {
  /** A table of hand-written chains (name → hook spec or undefined, rules) and no sets. */
  const handTable = (chains: Record<string, readonly [string | undefined, readonly string[]]>): FakeTableView => ({
    chains: new Map(Object.entries(chains).map(([name, [base, rules]]) => [name, { base, rules }])),
    sets: new Map(),
  });
  const nat = 'type nat hook prerouting priority -100';
  const pkt = { src: '10.0.0.2', dst: '172.30.0.41', dport: 80 };

  it('throws on an expression our backend does not write, wherever it is', () => {
    expect(() => tracePacket(handTable({ pre: [nat, ['ip dscp 1 drop']] }), pkt, LOCAL_IPS)).toThrow(TraceInputError);
    expect(() => tracePacket(handTable({ pre: [nat, ['counter jump x']], x: [undefined, []] }), pkt, LOCAL_IPS)).toThrow(TraceInputError);
    expect(() => tracePacket(handTable({ pre: [nat, ['jump x counter']], x: [undefined, []] }), pkt, LOCAL_IPS)).toThrow(/words after a verdict/);
    expect(() => tracePacket(handTable({ pre: [nat, ['ip daddr 172.30.0.41 tcp dport 80 queue']] }), pkt, LOCAL_IPS)).toThrow(TraceInputError);
    // Behind a condition the packet fails, and in a chain no packet reaches: every rule is read.
    expect(() => tracePacket(handTable({ pre: [nat, ['ip daddr 10.9.9.9 queue']] }), pkt, LOCAL_IPS)).toThrow(TraceInputError);
    expect(() => tracePacket(handTable({ pre: [nat, []], unused: [undefined, ['ip saddr 10.0.0.0/8 counter']] }), pkt, LOCAL_IPS)).toThrow(TraceInputError);
    expect(() => tracePacket(handTable({ pre: [nat, ['ip daddr 10.9.9.9 numgen random mod 1 vmap { 0 : goto gone }']] }), pkt, LOCAL_IPS)).toThrow(/no chain gone/);
    expect(() => tracePacket(handTable({ pre: ['type route hook output priority 0', []] }), pkt, LOCAL_IPS)).toThrow(/not understood/);
    expect(() => tracePacket(handTable({ pre: [nat, ['goto nowhere']] }), pkt, LOCAL_IPS)).toThrow(/no chain nowhere/);
    expect(() => tracePacket(handTable({ pre: [nat, ['ip daddr @nothing drop']] }), pkt, LOCAL_IPS)).toThrow(/no set nothing/);
  });

  it('explores every numgen branch, and drop ends the trace', () => {
    const view = handTable({
      pre: [nat, ['ip daddr 172.30.0.41 numgen random mod 2 vmap { 0 : goto a , 1 : goto b }']],
      a: [undefined, ['meta l4proto tcp dnat to 10.1.0.1:80']],
      b: [undefined, ['meta l4proto tcp dnat to 10.1.0.2:8080']],
      fwd: ['type filter hook forward priority 0', ['ip daddr 10.1.0.1 drop']],
    });
    expect(tracePacket(view, pkt, LOCAL_IPS).output).toBe('10.1.0.1:80, 10.1.0.2:8080, DROP');
    expect(tracePacket(view, { ...pkt, proto: 'udp' }, LOCAL_IPS).output).toBe('');
  });

  it('session affinity and the firewall over TestOverallNFTablesRules (ours, not upstream rows)', () => {
    checkFlows(table(OVERALL), [
      ['pod to svc5 (affinity): its endpoint chain, affinity set empty', '10.0.0.2', '172.30.0.45', 80, '10.180.0.3:80', false],
      ['external to svc5 NodePort', '203.0.113.2', '192.168.0.2', 3002, '10.180.0.3:80', true],
      ['allowed external to svc5 LB', '203.0.113.2', '5.6.7.8', 80, '10.180.0.3:80', true],
      ['blocked external to svc5 LB', '203.0.113.130', '5.6.7.8', 80, 'DROP'],
      ['svc2 NodePort, no local endpoint', '203.0.113.2', '192.168.0.2', 3001, 'DROP'],
      ['node to svc2 NodePort: short-circuit local traffic', '192.168.0.2', '192.168.0.2', 3001, '10.180.0.2:80', true],
      ['hairpin on svc4', '10.180.0.4', '172.30.0.44', 80, '10.180.0.4:80, 10.180.0.5:80', true],
    ]);
  });
});
