// What the IPv6 backend tests share (test/unit/ipv6-iptables.test.ts, ipv6-nftables.test.ts): upstream's fake
// node in both families, the flow-table row shape, IPv6 Services and slices as upstream's IPv6 tests build them,
// and one set of dual-stack objects each backend renders for IPv6 only.
import { endpointSlice, service, type EndpointSpec, type K8sObject, type ServiceSpec } from './objects.js';

export const NODE = 'test-node';
/** upstream's fake node: 2001:db8::1 (primary) and 2001:db8:1::2 on eth0, ::1 on lo (and its IPv4 addresses). */
export const LOCAL_IPS = ['127.0.0.1', '192.168.0.2', '192.168.1.2', '192.168.99.11', '::1', '2001:db8::1', '2001:db8:1::2'];

/** One row of a flow table: what a new connection from `src` to `dst:dport` reaches, and whether it is masqueraded. */
export type Row = readonly [name: string, src: string, dst: string, dport: number, output: string, masq?: boolean | undefined];

export const v6slice = (name: string, eps: EndpointSpec[], port = 80): K8sObject =>
  endpointSlice({ namespace: 'ns1', name: `${name}-1`, service: name, addressType: 'IPv6', ports: [{ name: 'p80', port }], endpoints: eps });

/** A LoadBalancer (NodePort 3001 unless ClusterIP) in ns1 with port p80, and its IPv6 slice when it has endpoints. */
export function svc(spec: Partial<ServiceSpec> & { name: string; clusterIP: string }, eps: EndpointSpec[]): K8sObject[] {
  return [
    service({ ports: [{ name: 'p80', port: 80, ...(spec.type === 'ClusterIP' ? {} : { nodePort: 3001 }) }], type: 'LoadBalancer', ...spec, namespace: 'ns1' }),
    ...(eps.length > 0 ? [v6slice(spec.name, eps)] : []),
  ];
}
export const at = (ip: string, nodeName?: string): EndpointSpec => ({ ip, ...(nodeName !== undefined ? { nodeName } : {}) });
export const BOTH = '[fd00:10:180::1]:80, [fd00:10:180::2:1]:80';

/** Dual-stack objects (and two the API would not produce), for what each backend renders of them in IPv6. */
export const DUAL_STACK_OBJECTS: K8sObject[] = [
  service({
    namespace: 'ns1',
    name: 'dual',
    type: 'LoadBalancer',
    clusterIP: '172.30.0.41',
    clusterIPs: ['172.30.0.41', 'fd00:172:30::41'],
    ipFamilies: ['IPv4', 'IPv6'],
    externalIPs: ['192.168.99.11', '2001:db8:1::2'],
    loadBalancerIngress: [{ ip: '1.2.3.4' }, { ip: '2001:db8:ff::1' }],
    loadBalancerSourceRanges: ['203.0.113.0/25', '2600:5200::/32'],
    ports: [{ name: 'p80', port: 80, nodePort: 3001 }],
  }),
  endpointSlice({ namespace: 'ns1', name: 'dual-v4', service: 'dual', ports: [{ name: 'p80', port: 80 }], endpoints: [{ ip: '10.180.0.1' }] }),
  endpointSlice({ namespace: 'ns1', name: 'dual-v6', service: 'dual', addressType: 'IPv6', ports: [{ name: 'p80', port: 80 }], endpoints: [{ ip: 'fd00:10:180::1' }] }),
  // IPv6 first in spec.clusterIPs: the IPv4 proxier still takes the IPv4 one, the IPv6 one the IPv6 one.
  service({ namespace: 'ns1', name: 'v6first', clusterIP: 'fd00:172:30::42', clusterIPs: ['fd00:172:30::42', '172.30.0.42'], ipFamilies: ['IPv6', 'IPv4'], ports: [{ name: 'p80', port: 80 }] }),
  endpointSlice({ namespace: 'ns1', name: 'v6first-v6', service: 'v6first', addressType: 'IPv6', ports: [{ name: 'p80', port: 80 }], endpoints: [{ ip: 'fd00:10:180::2' }] }),
  endpointSlice({ namespace: 'ns1', name: 'v6first-v4', service: 'v6first', ports: [{ name: 'p80', port: 80 }], endpoints: [{ ip: '10.180.0.2' }] }),
  // IPv4 single-stack with an IPv6 slice (not something the API produces): nothing in IPv6, its NodePort neither.
  service({ namespace: 'ns1', name: 'v4only', type: 'NodePort', clusterIP: '172.30.0.43', ipFamilies: ['IPv4'], ports: [{ name: 'p80', port: 80, nodePort: 3003 }] }),
  endpointSlice({ namespace: 'ns1', name: 'v4only-v6', service: 'v4only', addressType: 'IPv6', ports: [{ name: 'p80', port: 80 }], endpoints: [{ ip: 'fd00:10:180::3' }] }),
  // IPv6 single-stack whose only slice is IPv4: no IPv6 endpoints, so REJECT.
  service({ namespace: 'ns1', name: 'v6only', clusterIP: 'fd00:172:30::44', ipFamilies: ['IPv6'], ports: [{ name: 'p80', port: 80 }] }),
  endpointSlice({ namespace: 'ns1', name: 'v6only-v4', service: 'v6only', ports: [{ name: 'p80', port: 80 }], endpoints: [{ ip: '10.180.0.4' }] }),
];
