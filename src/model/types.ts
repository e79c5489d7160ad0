import type { IPFamily } from './ip.js';

export type Protocol = 'TCP' | 'UDP' | 'SCTP';
export const PROTOCOLS: readonly Protocol[] = ['TCP', 'UDP', 'SCTP'];

export type TrafficPolicy = 'Cluster' | 'Local';

/** Service types the proxier programs (ExternalName Services are skipped when read). */
export type ServiceType = 'ClusterIP' | 'NodePort' | 'LoadBalancer';

/** Addresses per family, canonical text, in spec order; an absent family has none. */
export type AddressesByFamily = Readonly<Partial<Record<IPFamily, readonly string[]>>>;

export type SessionAffinity =
  | { readonly type: 'None' }
  | { readonly type: 'ClientIP'; readonly timeoutSeconds: number };

/** "namespace/name": the identity of a Service, and the unit of change tracking (as upstream's UpdatedServices). */
export type ServiceKey = string & { readonly __brand: 'ServiceKey' };

export function serviceKey(namespace: string, name: string): ServiceKey {
  return `${namespace}/${name}` as ServiceKey;
}

/**
 * One port of one Service, as kube-proxy names it. The string form is `namespace/name:port`, or
 * `namespace/name` for an unnamed port; the protocol is part of the identity but not of the string.
 */
export interface ServicePortName {
  readonly service: ServiceKey;
  /** The port's name; '' for the single unnamed port a Service may have. */
  readonly port: string;
  readonly protocol: Protocol;
}

export function servicePortNameString(spn: ServicePortName): string {
  return spn.port === '' ? spn.service : `${spn.service}:${spn.port}`;
}

export interface ServicePortSpec {
  readonly name: string;
  readonly port: number;
  readonly protocol: Protocol;
  /** `spec.ports[].nodePort`; 0 when none is allocated (a ClusterIP Service, or allocateLoadBalancerNodePorts: false). */
  readonly nodePort: number;
}

/** A Service reduced to what the proxier needs; the full API object is never kept. */
export interface Service {
  readonly key: ServiceKey;
  readonly namespace: string;
  readonly name: string;
  /** Canonical cluster IPs by family (a dual-stack Service has one of each). */
  readonly clusterIPs: Readonly<Partial<Record<IPFamily, string>>>;
  readonly ports: readonly ServicePortSpec[];
  readonly sessionAffinity: SessionAffinity;
  readonly internalTrafficPolicy: TrafficPolicy;
  readonly type: ServiceType;
  /**
   * Local only when `spec.externalTrafficPolicy` is Local and the API makes the Service externally reachable
   * (NodePort, LoadBalancer, or externalIPs), as upstream's ExternalPolicyLocal; otherwise Cluster.
   */
  readonly externalTrafficPolicy: TrafficPolicy;
  /** `spec.externalIPs`, parsed (sloppily, as upstream) and split by family; unparseable entries dropped. */
  readonly externalIPs: AddressesByFamily;
  /** `status.loadBalancer.ingress[].ip` whose ipMode is not Proxy; hostname-only entries have none. */
  readonly loadBalancerIPs: AddressesByFamily;
  /** `spec.loadBalancerSourceRanges`, trimmed and masked CIDRs by family; invalid ones dropped, as upstream. */
  readonly loadBalancerSourceRanges: AddressesByFamily;
  /** `spec.healthCheckNodePort` for a LoadBalancer with externalTrafficPolicy Local, else 0 (upstream NeedsHealthCheck). */
  readonly healthCheckNodePort: number;
  /** True if the Service has a selector: a selector with no endpoints is the classic "my Service does not work". */
  readonly hasSelector: boolean;
}

/** An endpoint address in a slice, before it is paired with a port. */
export interface SliceEndpoint {
  readonly ip: string;
  readonly ready: boolean;
  readonly serving: boolean;
  readonly terminating: boolean;
  readonly nodeName: string | undefined;
  readonly zoneHints: readonly string[];
  readonly nodeHints: readonly string[];
}

export interface SlicePort {
  readonly name: string;
  readonly port: number;
  readonly protocol: Protocol;
}

/** An EndpointSlice reduced to what the proxier needs. */
export interface EndpointSlice {
  readonly namespace: string;
  readonly name: string;
  readonly service: ServiceKey;
  readonly family: IPFamily;
  readonly ports: readonly SlicePort[];
  readonly endpoints: readonly SliceEndpoint[];
}

/**
 * A backend of one service port: an address, a port and the three conditions that endpoint selection
 * reads. `ready` implies `serving` for well-formed slices, but both are kept as the API states them.
 */
export interface Endpoint {
  readonly ip: string;
  readonly port: number;
  /** `ip:port` (IPv6 bracketed), the identity kube-proxy hashes and sorts by. */
  readonly hostPort: string;
  readonly ready: boolean;
  readonly serving: boolean;
  readonly terminating: boolean;
  readonly isLocal: boolean;
  readonly zoneHints: readonly string[];
  readonly nodeHints: readonly string[];
}
