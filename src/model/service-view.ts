// The one view of a Service every backend renders: per port, its name, its endpoints merged from every slice,
// and upstream's endpoint selection for this node, computed here once rather than in each backend.
import { type ClusterIPSelection, selectClusterIPEndpoints } from './categorize.js';
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
  readonly selection: ClusterIPSelection;
}

/** A Service in one IP family: its ClusterIP there, and its ports (none when it has no ClusterIP there). */
export interface ServiceView {
  readonly service: Service;
  readonly clusterIP: string | undefined;
  readonly ports: readonly ServicePortView[];
}

/**
 * The view of one Service in `family` from the node `state` is seen from; undefined once it is deleted. Built
 * one Service at a time, as it is rendered: the merged endpoints of 10,000 Services held at once would
 * outlive young-generation collections.
 */
export function viewService(state: ClusterState, key: ServiceKey, family: IPFamily): ServiceView | undefined {
  const service = state.getService(key);
  if (service === undefined) return undefined;
  const clusterIP = service.clusterIPs[family];
  if (clusterIP === undefined) return { service, clusterIP, ports: [] };
  const slices = state.slicesOf(key);
  const node = state.node;
  const ports = service.ports.map((port): ServicePortView => {
    const spn = { service: key, port: port.name, protocol: port.protocol };
    const endpoints = endpointsForPort(slices, port, family, node.name);
    return {
      port,
      spn,
      name: servicePortNameString(spn),
      proto: port.protocol === 'TCP' ? 'tcp' : port.protocol === 'UDP' ? 'udp' : 'sctp',
      endpoints,
      selection: selectClusterIPEndpoints(endpoints, service.internalTrafficPolicy, node),
    };
  });
  return { service, clusterIP, ports };
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
