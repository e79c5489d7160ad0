// Upstream's packet-flow tables for external traffic (iptables/nftables proxier_test.go, as the external-traffic
// reference quotes them), traced over the rules this backend compiles for the same input. Output is every
// endpoint a new connection may reach (or the filter verdict), masq whether it is masqueraded.
import { describe, expect, it } from 'vitest';
import type { IptablesOptions } from '../../src/backends/iptables/options.js';
import { compilerFor, load } from '../support/compile.js';
import { iptablesRulesetOf, traceIptables } from '../../src/diagnose/trace/iptables.js';
import { flowOutput, flowRequest } from '../support/upstream-trace.js';
import { endpointSlice, service, type EndpointSpec, type K8sObject, type ServiceSpec } from '../support/objects.js';
import { OVERALL } from '../support/upstream-overall.js';

/** upstream's fake node: 192.168.0.2 primary, 192.168.1.2 and 192.168.99.11 on eth0 too, and loopback. */
const LOCAL_IPS = ['127.0.0.1', '192.168.0.2', '192.168.1.2', '192.168.99.11'];
const NODE = 'test-node';

type Row = readonly [name: string, src: string, dst: string, dport: number, output: string, masq?: boolean | undefined];

function rules(objects: readonly K8sObject[], overrides: Partial<IptablesOptions> = {}): string {
  const loaded = load(objects, NODE);
  loaded.state.setNodeIPs(['192.168.0.2']);
  return compilerFor(loaded, { clusterCidr: '10.0.0.0/8', ...overrides }).planFull().payload.text;
}

function checkFlows(text: string, rows: readonly Row[]): void {
  const got = rows.map(([name, src, dst, dport, output, masq]) => {
    const t = flowOutput(traceIptables(iptablesRulesetOf(text, name), flowRequest({ src, dst, dport }, LOCAL_IPS), { source: name }));
    // upstream does not check masq for DROP, REJECT or no match.
    return [name, t.output, masq === undefined ? undefined : t.masq];
  });
  expect(got).toEqual(rows.map(([name, , , , output, masq]) => [name, output, masq]));
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

describe('upstream flow tables over the iptables rules', () => {
  it('TestTracePacket (over TestOverallIPTablesRules)', () => {
    checkFlows(rules(OVERALL), [
      ['no match', '10.0.0.2', '10.0.0.3', 80, ''],
      ['single endpoint', '10.0.0.2', '172.30.0.41', 80, '10.180.0.1:80'],
      ['multiple endpoints', '10.0.0.2', '172.30.0.44', 80, '10.180.0.4:80, 10.180.0.5:80'],
      ['LOCAL, KUBE-MARK-MASQ', '192.168.0.2', '192.168.99.22', 80, '10.180.0.2:80', true],
      ['DROP', '203.0.113.2', '192.168.99.22', 80, 'DROP'],
      ['ACCEPT (NodePortHealthCheck)', '192.168.0.2', '192.168.0.2', 30000, 'ACCEPT'],
      ['REJECT', '10.0.0.2', '172.30.0.46', 80, 'REJECT'],
    ]);
  });

  it('TestNoEndpointsReject', () => {
    const text = rules(svc({ name: 'svc1', clusterIP: '172.30.0.41', externalIPs: ['192.168.99.11'], loadBalancerIngress: [{ ip: '1.2.3.4' }] }, []));
    checkFlows(text, [
      ['pod to cluster IP with no endpoints', '10.0.0.2', '172.30.0.41', 80, 'REJECT'],
      ['external to external IP with no endpoints', '203.0.113.2', '192.168.99.11', 80, 'REJECT'],
      ['pod to NodePort with no endpoints', '10.0.0.2', '192.168.0.2', 3001, 'REJECT'],
      ['external to NodePort with no endpoints', '203.0.113.2', '192.168.0.2', 3001, 'REJECT'],
      ['pod to LoadBalancer IP with no endpoints', '10.0.0.2', '1.2.3.4', 80, 'REJECT'],
      ['external to LoadBalancer IP with no endpoints', '203.0.113.2', '1.2.3.4', 80, 'REJECT'],
    ]);
  });

  it('TestLoadBalancer', () => {
    const ep = '10.180.0.1:80';
    const text = rules(
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
    checkFlows(text, [
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
    // nodePortAddresses as GetNodeIPs resolves upstream's CIDRs against its fake interfaces.
    it.each([
      ['localhost-nodeports enabled', { localhostNodePorts: true }, true, true],
      ['localhost-nodeports disabled', { localhostNodePorts: false }, true, false],
      ['localhost-nodeports disabled, localhost in nodeport-addresses', { localhostNodePorts: false, nodePortAddresses: ['192.168.0.2', '127.0.0.1'] }, false, false],
      ['localhost-nodeports enabled (sic: false), multiple nodeport-addresses', { localhostNodePorts: false, nodePortAddresses: ['192.168.0.2', '192.168.1.2'] }, true, false],
    ] as const)('%s', (_name, overrides, allowAltNodeIP, expectFirewall) => {
      const text = rules(objects, overrides);
      checkFlows(text, [
        ['pod to cluster IP', '10.0.0.2', '172.30.0.41', 80, both, false],
        ['external to nodePort', '203.0.113.2', '192.168.0.2', 3001, both, true],
        ['node to nodePort', '192.168.0.2', '192.168.0.2', 3001, both, true],
        expectFirewall
          ? ['localhost to nodePort gets masqueraded', '127.0.0.1', '127.0.0.1', 3001, both, true]
          : ['localhost to nodePort is ignored', '127.0.0.1', '127.0.0.1', 3001, ''],
        allowAltNodeIP
          ? ['external to nodePort on secondary IP', '203.0.113.2', '192.168.1.2', 3001, both, true]
          : ['secondary nodeIP ignores NodePorts', '203.0.113.2', '192.168.1.2', 3001, ''],
      ]);
      const firewall = '-A KUBE-FIREWALL -m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP';
      expect(text.includes(firewall)).toBe(expectFirewall);
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
      checkFlows(rules(objects('Local')), [
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
      checkFlows(rules(objects('Cluster')), [
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
      ['localhost to NodePort', '127.0.0.1', '127.0.0.1', 3001, s1, true],
      ['node to LB', '192.168.0.2', '1.2.3.4', 80, s1, true],
      ['external to ClusterIP', '203.0.113.2', '172.30.0.41', 80, s1, true],
      ['external to NodePort', '203.0.113.2', '192.168.0.2', 3001, s1, true],
      ['external to LB', '203.0.113.2', '1.2.3.4', 80, s1, true],
      ['pod to ClusterIP with eTP:Local', '10.0.0.2', '172.30.0.42', 80, s2, false],
      ['pod to NodePort with eTP:Local', '10.0.0.2', '192.168.0.2', 3002, s2, false],
      ['pod to LB with eTP:Local', '10.0.0.2', '5.6.7.8', 80, s2, false],
      ['node to ClusterIP with eTP:Local', '192.168.0.2', '172.30.0.42', 80, s2, true],
      ['node to NodePort with eTP:Local', '192.168.0.2', '192.168.0.2', 3001, s1, true],
      ['localhost to NodePort with eTP:Local', '127.0.0.1', '127.0.0.1', 3002, s2, true],
      ['node to LB with eTP:Local', '192.168.0.2', '5.6.7.8', 80, s2, true],
      ['external to ClusterIP with eTP:Local', '203.0.113.2', '172.30.0.42', 80, s2, true],
      ['external to NodePort with eTP:Local', '203.0.113.2', '192.168.0.2', 3002, '10.180.0.2:80', false],
      ['external to LB with eTP:Local', '203.0.113.2', '5.6.7.8', 80, '10.180.0.2:80', false],
      ['pod to ClusterIP with iTP:Local', '10.0.0.2', '172.30.0.43', 80, '10.180.0.3:80', false],
      ['pod to NodePort with iTP:Local', '10.0.0.2', '192.168.0.2', 3003, s3, true],
      ['pod to LB with iTP:Local', '10.0.0.2', '9.10.11.12', 80, s3, true],
      ['node to ClusterIP with iTP:Local', '192.168.0.2', '172.30.0.43', 80, '10.180.0.3:80', true],
      ['node to NodePort with iTP:Local', '192.168.0.2', '192.168.0.2', 3003, s3, true],
      ['localhost to NodePort with iTP:Local', '127.0.0.1', '127.0.0.1', 3003, s3, true],
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
    it('base', () => checkFlows(rules(objects), base));
    it('no LocalTrafficDetector', () => checkFlows(rules(objects, { clusterCidr: undefined }), override(base, noDetector)));
    it('masqueradeAll', () => checkFlows(rules(objects, { masqueradeAll: true }), override(base, all)));
    it('masqueradeAll, no LocalTrafficDetector', () => {
      const both = { ...noDetector, ...all, 'pod to NodePort with eTP:Local': { output: '10.180.0.2:80' } };
      // masqueradeAll masquerades every ClusterIP connection, so the detector's absence no longer unmasks node and external ones.
      const merged = Object.fromEntries(Object.entries(both).map(([k, v]) => [k, k.includes('ClusterIP') ? { ...v, masq: true } : v]));
      checkFlows(rules(objects, { masqueradeAll: true, clusterCidr: undefined }), override(base, merged));
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
      checkFlows(rules(objects('Local', [...eps])), flows(pod, ext, false));
    });
    it.each([
      ['ready endpoints exist', [at('10.0.1.1', NODE, T), at('10.0.1.2', NODE, T), at('10.0.1.3', 'another-node', ST), at('10.0.1.4', 'another-node', X), at('10.0.1.5', 'another-node', T)], '10.0.1.1:80, 10.0.1.2:80, 10.0.1.5:80'],
      ['only terminating endpoints exist', [at('10.0.1.2', NODE, ST), at('10.0.1.3', NODE, ST), at('10.0.1.4', 'another-node', X), at('10.0.1.5', 'another-node', ST)], '10.0.1.2:80, 10.0.1.3:80, 10.0.1.5:80'],
      ['terminating endpoints on remote node', [at('10.0.1.5', 'node-1', ST)], '10.0.1.5:80'],
      ['no usable endpoints on any node', [at('10.0.1.5', NODE, X), at('10.0.1.6', 'node-1', X)], 'REJECT'],
      ['endpoints deleted', [], 'REJECT'],
    ] as const)('Cluster: %s', (_n, eps, both) => {
      checkFlows(rules(objects('Cluster', [...eps])), flows(both, both, true));
    });
  });
});
