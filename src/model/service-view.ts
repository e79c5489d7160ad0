// The one view of a Service every backend renders: per port, its name, its endpoints merged from every slice,
// and upstream's endpoint selection for this node, computed here once rather than in each backend.
import { type PortSelection, selectEndpoints } from './categorize.js';
import { endpointCountForPort, endpointsForPort } from './endpoints.js';
import type { IPFamily } from './ip.js';
import type { ClusterState } from './state.js';
import { type Endpoint, type Service, type ServiceKey, type ServicePortName, type ServicePortSpec, servicePortNameString } from './types.js';

/** One port of a Service as a backend renders it. */
export interface ServicePortView {
  readonly port: ServicePortSpec;
  readonly spn: ServicePortName;
  /** `ns/svc:port` (or `ns/svc` for an unnamed port), as kube-proxy writes it in comments. */
  readonly name: string;
  /** The protocol as iptables, nft and ipvsadm spell it. */
  readonly proto: 'tcp' | 'udp' | 'sctp';
  /** Every endpoint of the port, merged from the Service's slices of this family, sorted by `ip:port`. */
  readonly endpoints: readonly Endpoint[];
  /** Which of them this node's traffic to the port may use (upstream's CategorizeEndpoints). */
  readonly selection: PortSelection;
  /** 0 when the port has none. */
  readonly nodePort: number;
  /** Has a NodePort, external IPs or load-balancer IPs in this family (upstream's ExternallyAccessible). */
  readonly externallyAccessible: boolean;
}

/** A Service in one IP family: its ClusterIP there, and its ports (none when it has no ClusterIP there). */
export interface ServiceView {
  readonly service: Service;
  readonly clusterIP: string | undefined;
  readonly ports: readonly ServicePortView[];
  /** This family's external IPs, load-balancer IPs and source ranges (empty when it has no ClusterIP here). */
  readonly externalIPs: readonly string[];
  readonly loadBalancerIPs: readonly string[];
  readonly sourceRanges: readonly string[];
}

const NONE: readonly string[] = Object.freeze([]);

/**
 * The view of one Service in `family` from the node `state` is seen from; undefined once it is deleted. Built
 * one Service at a time, as it is rendered: the merged endpoints of 10,000 Services held at once would
 * outlive young-generation collections.
 */
export function viewService(state: ClusterState, key: ServiceKey, family: IPFamily): ServiceView | undefined {
  const service = state.getService(key);
  if (service === undefined) return undefined;
  const clusterIP = service.clusterIPs[family];
  // A Service with no ClusterIP in this family gets nothing here, its NodePorts and external addresses included.
  if (clusterIP === undefined) return { service, clusterIP, ports: [], externalIPs: NONE, loadBalancerIPs: NONE, sourceRanges: NONE };
  const externalIPs = service.externalIPs[family] ?? NONE;
  const loadBalancerIPs = service.loadBalancerIPs[family] ?? NONE;
  const sourceRanges = service.loadBalancerSourceRanges[family] ?? NONE;
  const slices = state.slicesOf(key);
  const node = state.node;
  const ports = service.ports.map((port): ServicePortView => {
    const spn = { service: key, port: port.name, protocol: port.protocol };
    const endpoints = endpointsForPort(slices, port, family, node.name);
    const externallyAccessible = port.nodePort !== 0 || externalIPs.length > 0 || loadBalancerIPs.length > 0;
    const policy = {
      internalTrafficPolicy: service.internalTrafficPolicy,
      externalTrafficPolicy: service.externalTrafficPolicy,
      externallyAccessible,
    };
    return {
      port,
      spn,
      name: servicePortNameString(spn),
      proto: port.protocol === 'TCP' ? 'tcp' : port.protocol === 'UDP' ? 'udp' : 'sctp',
      endpoints,
      selection: selectEndpoints(endpoints, policy, node),
      nodePort: port.nodePort,
      externallyAccessible,
    };
  });
  return { service, clusterIP, ports, externalIPs, loadBalancerIPs, sourceRanges };
}

/** How many endpoints the Service's ports have in `family`, without building them (large-cluster mode counts these). */
export function serviceEndpointCount(state: ClusterState, key: ServiceKey, family: IPFamily): number {
  const service = state.getService(key);
  if (service === undefined) return 0;
  const slices = state.slicesOf(key);
  let n = 0;
  for (const port of service.ports) n += endpointCountForPort(slices, port, family);
  return n;
}
