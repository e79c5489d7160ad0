// The ipsets of IPVS mode, with kube-proxy's names, types and comments (pkg/proxy/ipvs): which Service addresses
// and ports exist, so a constant handful of iptables rules can masquerade, accept and filter them. Pure.
import type { IPFamily } from '../../model/ip.js';
import { createSetLine } from '../../kernel/syntax/ipset.js';
import { KUBE_LOOP_BACK } from '../shared/iptables-fixed.js';
import type { VirtualServer } from './ipvsadm.js';

/** hash:ip,port: every ClusterIP,proto:port. */
export const KUBE_CLUSTER_IP = 'KUBE-CLUSTER-IP';
/** hash:ip: every address bound to kube-ipvs0. */
export const KUBE_IPVS_IPS = 'KUBE-IPVS-IPS';
export const KUBE_EXTERNAL_IP = 'KUBE-EXTERNAL-IP';
export const KUBE_EXTERNAL_IP_LOCAL = 'KUBE-EXTERNAL-IP-LOCAL';
export const KUBE_LOAD_BALANCER = 'KUBE-LOAD-BALANCER';
export const KUBE_LOAD_BALANCER_LOCAL = 'KUBE-LOAD-BALANCER-LOCAL';
export const KUBE_LOAD_BALANCER_FW = 'KUBE-LOAD-BALANCER-FW';
export const KUBE_LOAD_BALANCER_SOURCE_CIDR = 'KUBE-LOAD-BALANCER-SOURCE-CIDR';
export const KUBE_LOAD_BALANCER_SOURCE_IP = 'KUBE-LOAD-BALANCER-SOURCE-IP';
export const KUBE_NODE_PORT_TCP = 'KUBE-NODE-PORT-TCP';
export const KUBE_NODE_PORT_LOCAL_TCP = 'KUBE-NODE-PORT-LOCAL-TCP';
export const KUBE_NODE_PORT_UDP = 'KUBE-NODE-PORT-UDP';
export const KUBE_NODE_PORT_LOCAL_UDP = 'KUBE-NODE-PORT-LOCAL-UDP';
export const KUBE_NODE_PORT_SCTP = 'KUBE-NODE-PORT-SCTP-HASH';
export const KUBE_NODE_PORT_LOCAL_SCTP = 'KUBE-NODE-PORT-LOCAL-SCTP-HASH';
export const KUBE_HEALTH_CHECK_NODE_PORT = 'KUBE-HEALTH-CHECK-NODE-PORT';

export interface IpvsSet {
  readonly name: string;
  readonly type: 'hash:ip' | 'hash:ip,port' | 'hash:ip,port,ip' | 'hash:ip,port,net' | 'bitmap:port';
  /** kube-proxy's comment, which the iptables rule matching the set carries. */
  readonly comment: string;
}

/** Every set, in the order they are created. */
export const IPVS_SETS: readonly IpvsSet[] = [
  { name: KUBE_CLUSTER_IP, type: 'hash:ip,port', comment: 'Kubernetes service cluster ip + port for masquerade purpose' },
  { name: KUBE_LOOP_BACK, type: 'hash:ip,port,ip', comment: 'Kubernetes endpoints dst ip:port, source ip for solving hairpin purpose' },
  { name: KUBE_EXTERNAL_IP, type: 'hash:ip,port', comment: 'Kubernetes service external ip + port for masquerade and filter purpose' },
  { name: KUBE_EXTERNAL_IP_LOCAL, type: 'hash:ip,port', comment: 'Kubernetes service external ip + port with externalTrafficPolicy=local' },
  { name: KUBE_LOAD_BALANCER, type: 'hash:ip,port', comment: 'Kubernetes service lb portal' },
  { name: KUBE_LOAD_BALANCER_LOCAL, type: 'hash:ip,port', comment: 'Kubernetes service load balancer ip + port with externalTrafficPolicy=local' },
  { name: KUBE_LOAD_BALANCER_FW, type: 'hash:ip,port', comment: 'Kubernetes service load balancer ip + port for load balancer with sourceRange' },
  {
    name: KUBE_LOAD_BALANCER_SOURCE_CIDR,
    type: 'hash:ip,port,net',
    comment: 'Kubernetes service load balancer ip + port + source cidr for packet filter purpose',
  },
  {
    name: KUBE_LOAD_BALANCER_SOURCE_IP,
    type: 'hash:ip,port,ip',
    comment: 'Kubernetes service load balancer ip + port + source IP for packet filter purpose',
  },
  { name: KUBE_NODE_PORT_TCP, type: 'bitmap:port', comment: 'Kubernetes nodeport TCP port for masquerade purpose' },
  { name: KUBE_NODE_PORT_LOCAL_TCP, type: 'bitmap:port', comment: 'Kubernetes nodeport TCP port with externalTrafficPolicy=local' },
  { name: KUBE_NODE_PORT_UDP, type: 'bitmap:port', comment: 'Kubernetes nodeport UDP port for masquerade purpose' },
  { name: KUBE_NODE_PORT_LOCAL_UDP, type: 'bitmap:port', comment: 'Kubernetes nodeport UDP port with externalTrafficPolicy=local' },
  { name: KUBE_NODE_PORT_SCTP, type: 'hash:ip,port', comment: "Kubernetes nodeport SCTP port for masquerade purpose with type 'hash ip:port'" },
  {
    name: KUBE_NODE_PORT_LOCAL_SCTP,
    type: 'hash:ip,port',
    comment: "Kubernetes nodeport SCTP port with externalTrafficPolicy=local with type 'hash ip:port'",
  },
  { name: KUBE_HEALTH_CHECK_NODE_PORT, type: 'bitmap:port', comment: 'Kubernetes health check node port' },
  { name: KUBE_IPVS_IPS, type: 'hash:ip', comment: 'Addresses on the ipvs interface' },
];

export const IPVS_SET_NAMES: readonly string[] = IPVS_SETS.map((s) => s.name);

export function setComment(name: string): string {
  return IPVS_SETS.find((s) => s.name === name)?.comment ?? name;
}

/** The `ipset restore` create line of one of our sets: a port bitmap has a range and no family. */
export function createIpvsSetLine(set: IpvsSet, family: IPFamily): string {
  if (set.type === 'bitmap:port') return `create ${set.name} bitmap:port range 0-65535\n`;
  return createSetLine(set.name, set.type, family);
}

/**
 * Whether a virtual server is one of our NodePorts by these sets (as read from the node): its protocol's port
 * bitmap holds its port, or for SCTP the set holds its address and port. This recognises it on any address,
 * including one that is no longer a NodePort address.
 */
export function isNodePortVirtualServer(
  vs: Pick<VirtualServer, 'protocol' | 'address' | 'port'>,
  sets: ReadonlyMap<string, ReadonlySet<string>>,
): boolean {
  if (vs.protocol === 'tcp') return sets.get(KUBE_NODE_PORT_TCP)?.has(String(vs.port)) === true;
  if (vs.protocol === 'udp') return sets.get(KUBE_NODE_PORT_UDP)?.has(String(vs.port)) === true;
  return sets.get(KUBE_NODE_PORT_SCTP)?.has(`${vs.address},sctp:${vs.port}`) === true;
}
