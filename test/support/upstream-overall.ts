// kubernetes/kubernetes pkg/proxy/{iptables,nftables}/proxier_test.go, TestOverall{IPTables,NFTables}Rules: the
// six Services and slices both tests compile (node test-node at 192.168.0.2, local detector 10.0.0.0/8).
import { endpointSlice, service } from './objects.js';

export const p80 = (nodePort?: number) => [{ name: 'p80', port: 80, ...(nodePort !== undefined ? { nodePort } : {}) }];
export const slice = (ns: string, svc: string, endpoints: { ip: string; nodeName?: string }[]) =>
  endpointSlice({ namespace: ns, name: `${svc}-1`, service: svc, ports: [{ name: 'p80', port: 80 }], endpoints });

export const OVERALL = [
  service({ namespace: 'ns1', name: 'svc1', clusterIP: '172.30.0.41', ports: p80() }),
  slice('ns1', 'svc1', [{ ip: '10.180.0.1' }]),
  service({
    namespace: 'ns2',
    name: 'svc2',
    type: 'LoadBalancer',
    clusterIP: '172.30.0.42',
    ports: p80(3001),
    externalTrafficPolicy: 'Local',
    loadBalancerIngress: [{ ip: '1.2.3.4' }],
    externalIPs: ['192.168.99.22'],
    healthCheckNodePort: 30000,
  }),
  slice('ns2', 'svc2', [{ ip: '10.180.0.2' }]),
  service({ namespace: 'ns3', name: 'svc3', type: 'NodePort', clusterIP: '172.30.0.43', ports: p80(3003) }),
  slice('ns3', 'svc3', [{ ip: '10.180.0.3' }]),
  service({ namespace: 'ns4', name: 'svc4', type: 'NodePort', clusterIP: '172.30.0.44', externalIPs: ['192.168.99.33'], ports: p80() }),
  slice('ns4', 'svc4', [{ ip: '10.180.0.4' }, { ip: '10.180.0.5', nodeName: 'test-node' }]),
  service({
    namespace: 'ns5',
    name: 'svc5',
    type: 'LoadBalancer',
    clusterIP: '172.30.0.45',
    ports: p80(3002),
    externalTrafficPolicy: 'Cluster',
    loadBalancerIngress: [{ ip: '5.6.7.8' }],
    healthCheckNodePort: 30000,
    loadBalancerSourceRanges: [' 203.0.113.0/25'],
    affinityTimeoutSeconds: 10800,
  }),
  slice('ns5', 'svc5', [{ ip: '10.180.0.3' }]),
  service({ namespace: 'ns6', name: 'svc6', clusterIP: '172.30.0.46', ports: [{ name: 'p80', port: 80, targetPort: 80 }] }),
];

