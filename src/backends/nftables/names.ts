import type { Endpoint, Protocol, ServicePortName } from '../../model/types.js';
import { chainHash } from '../shared/chain-hash.js';

/**
 * kube-proxy's nftables-mode hash: the first 8 characters of base32(SHA-256(name)). base32 encodes 5 bytes per 8
 * characters, so they are the first 8 of iptables mode's 16-character hash of the same input.
 */
export function nftHash(name: string): string {
  return chainHash(name).slice(0, 8);
}

/** Chain names longer than this are cut, as upstream's hashAndTruncate does (nft's limit is 256). */
const MAX_NAME = 240;

function hashAndTruncate(name: string): string {
  const full = `${nftHash(name)}-${name}`;
  return full.length > MAX_NAME ? `${full.slice(0, MAX_NAME - 3)}...` : full;
}

/** `ns/name/proto/portName`: the base of every per-service-port name (the port's name, '' when unnamed). */
export function servicePortBase(spn: ServicePortName): string {
  return `${spn.service}/${spn.protocol.toLowerCase()}/${spn.port}`;
}

/** `<base>__<ip>/<port>`, colons of IPv6 addresses turned into dots as upstream does. */
export function endpointBase(portBase: string, ep: Pick<Endpoint, 'ip' | 'port'>): string {
  return `${portBase}__${ep.ip.replaceAll(':', '.')}/${ep.port}`;
}

export const serviceChain = (portBase: string): string => `service-${hashAndTruncate(portBase)}`;
export const localChain = (portBase: string): string => `local-${hashAndTruncate(portBase)}`;
export const externalChain = (portBase: string): string => `external-${hashAndTruncate(portBase)}`;
export const firewallChain = (portBase: string): string => `firewall-${hashAndTruncate(portBase)}`;
export const endpointChain = (epBase: string): string => `endpoint-${hashAndTruncate(epBase)}`;
export const affinitySet = (epBase: string): string => `affinity-${hashAndTruncate(epBase)}`;

/**
 * What a shared load-balancing chain serves, and so how it looks its endpoints up:
 * - `cluster`: ClusterIP traffic, by the packet's ClusterIP and port in @service-endpoints-<proto>;
 * - `masq`: external and load-balancer IP traffic of externalTrafficPolicy Cluster ports, the same lookup after
 *   marking the packet for masquerading (what upstream's external chain does before its service chain);
 * - `nodeport`: NodePort traffic of externalTrafficPolicy Cluster ports, marked, then by NodePort in
 *   @nodeport-endpoints-<proto> (the destination may be any node address, so it is not part of the key).
 */
export type LoadBalancerKind = 'cluster' | 'masq' | 'nodeport';

/**
 * The shared load-balancing chain of every Service port without affinity that has `count` endpoints of this
 * protocol for this kind of traffic. Not an upstream name: upstream has chains per service port (see
 * docs/backends/nftables.md).
 */
export function loadBalancerChain(kind: LoadBalancerKind, protocol: Protocol, count: number): string {
  return `lb-${kind === 'cluster' ? '' : `${kind}-`}${protocol.toLowerCase()}-${count}`;
}

const LB_CHAIN = /^lb-(?:(?:masq|nodeport)-)?(tcp|udp|sctp)-([1-9][0-9]*)$/;

export function isLoadBalancerChain(name: string): boolean {
  return LB_CHAIN.test(name);
}

/** Chains and sets whose lifetime follows a Service (upstream: "a chain with a / in its name"). */
export function isPerServiceObject(name: string): boolean {
  return name.includes('/');
}
