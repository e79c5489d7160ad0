import { byHostPortText } from './endpoints.js';
import type { Endpoint, TrafficPolicy } from './types.js';

/** The node this proxier runs on, as endpoint selection needs it. */
export interface NodeTopology {
  readonly name: string;
  /** The node's `topology.kubernetes.io/zone` label, if known. */
  readonly zone: string | undefined;
  /**
   * The node's IPs, primary first per family: `--node-ip`, else the Node's addresses (InternalIP before
   * ExternalIP), as kube-proxy picks them. The load-balancer firewall lets the node reach its own LB IPs by them.
   */
  readonly ips: readonly string[];
}

/** The traffic-policy facts of a service port that decide which endpoint lists it needs. */
export interface PolicyView {
  readonly internalTrafficPolicy: TrafficPolicy;
  readonly externalTrafficPolicy: TrafficPolicy;
  /** This port has a NodePort, external IPs or load-balancer IPs in the family being programmed. */
  readonly externallyAccessible: boolean;
}

export interface EndpointSelection {
  /** Endpoints for "Cluster" traffic policy (topology-filtered ready ones, or serving-terminating fallback). */
  readonly clusterEndpoints: readonly Endpoint[];
  /** Endpoints for "Local" traffic policy (local ready ones, or local serving-terminating fallback). */
  readonly localEndpoints: readonly Endpoint[];
  /** Union of both lists: each member gets an endpoint chain. */
  readonly allReachable: readonly Endpoint[];
  /** True if any usable endpoint exists anywhere: false means REJECT. */
  readonly hasAnyEndpoints: boolean;
}

export function usesClusterEndpoints(p: PolicyView): boolean {
  return p.internalTrafficPolicy !== 'Local' || p.externallyAccessible;
}

export function usesLocalEndpoints(p: PolicyView): boolean {
  return p.internalTrafficPolicy === 'Local' || (p.externalTrafficPolicy === 'Local' && p.externallyAccessible);
}

type TopologyMode = 'none' | 'PreferSameNode' | 'PreferSameZone';

/**
 * Topology hints apply only when every ready endpoint carries them and one names this node (or zone);
 * otherwise all ready endpoints are used. Node hints are checked first, as upstream's
 * PreferSameTrafficDistribution does.
 */
function topologyMode(endpoints: readonly Endpoint[], node: NodeTopology): TopologyMode {
  let allHaveNodeHints = true;
  let hasForNode = false;
  let allHaveZoneHints = true;
  let hasForZone = false;
  for (const ep of endpoints) {
    if (!ep.ready) continue;
    if (ep.nodeHints.length === 0) allHaveNodeHints = false;
    else if (ep.nodeHints.includes(node.name)) hasForNode = true;
    if (ep.zoneHints.length === 0) allHaveZoneHints = false;
    else if (node.zone !== undefined && ep.zoneHints.includes(node.zone)) hasForZone = true;
  }
  if (allHaveNodeHints && hasForNode) return 'PreferSameNode';
  if (allHaveZoneHints && hasForZone) return 'PreferSameZone';
  return 'none';
}

function availableForTopology(ep: Endpoint, mode: TopologyMode, node: NodeTopology): boolean {
  switch (mode) {
    case 'none':
      return true;
    case 'PreferSameNode':
      return ep.nodeHints.includes(node.name);
    case 'PreferSameZone':
      return node.zone !== undefined && ep.zoneHints.includes(node.zone);
  }
}

/** Endpoint selection, once for every backend: a port of upstream's CategorizeEndpoints semantics. */
export function categorizeEndpoints(
  endpoints: readonly Endpoint[],
  policy: PolicyView,
  node: NodeTopology,
): EndpointSelection {
  let clusterEndpoints: readonly Endpoint[] = [];
  let hasAnyEndpoints = false;

  let mode: TopologyMode = 'none';
  if (usesClusterEndpoints(policy)) {
    mode = topologyMode(endpoints, node);
    clusterEndpoints = endpoints.filter((ep) => ep.ready && availableForTopology(ep, mode, node));
    // No ready endpoint anywhere (topology never empties the list): fall back to serving-terminating ones.
    if (clusterEndpoints.length === 0) clusterEndpoints = endpoints.filter((ep) => ep.serving && ep.terminating);
    hasAnyEndpoints = clusterEndpoints.length > 0;
  }

  if (!usesLocalEndpoints(policy)) {
    return { clusterEndpoints, localEndpoints: [], allReachable: clusterEndpoints, hasAnyEndpoints };
  }

  let hasLocalReady = false;
  let hasLocalServingTerminating = false;
  for (const ep of endpoints) {
    if (ep.ready) {
      hasAnyEndpoints = true;
      if (ep.isLocal) hasLocalReady = true;
    } else if (ep.serving && ep.terminating) {
      hasAnyEndpoints = true;
      if (ep.isLocal) hasLocalServingTerminating = true;
    }
  }
  let localEndpoints: readonly Endpoint[] = [];
  const useServingTerminating = !hasLocalReady && hasLocalServingTerminating;
  if (hasLocalReady) localEndpoints = endpoints.filter((ep) => ep.isLocal && ep.ready);
  else if (useServingTerminating) localEndpoints = endpoints.filter((ep) => ep.isLocal && ep.serving && ep.terminating);

  if (!usesClusterEndpoints(policy)) {
    return { clusterEndpoints, localEndpoints, allReachable: localEndpoints, hasAnyEndpoints };
  }
  // Without topology filtering or a terminating fallback, every local endpoint is already a cluster endpoint.
  if (mode === 'none' && !useServingTerminating) {
    return { clusterEndpoints, localEndpoints, allReachable: clusterEndpoints, hasAnyEndpoints };
  }
  const union = new Map<string, Endpoint>();
  for (const ep of clusterEndpoints) union.set(ep.hostPort, ep);
  for (const ep of localEndpoints) union.set(ep.hostPort, ep);
  return { clusterEndpoints, localEndpoints, allReachable: [...union.values()].sort(byHostPortText), hasAnyEndpoints };
}

/** A service port's selection, and the endpoints each kind of traffic to it goes to. */
export interface PortSelection extends EndpointSelection {
  /** ClusterIP traffic: the local endpoints under internalTrafficPolicy Local, else the cluster ones; empty means REJECT or DROP. */
  readonly internal: readonly Endpoint[];
  /** NodePort, external and load-balancer IP traffic from outside: local endpoints under externalTrafficPolicy Local, else cluster ones. */
  readonly external: readonly Endpoint[];
}

/** Endpoint selection for one service port, as every backend renders it (upstream's syncProxyRules booleans). */
export function selectEndpoints(endpoints: readonly Endpoint[], policy: PolicyView, node: NodeTopology): PortSelection {
  const sel = categorizeEndpoints(endpoints, policy, node);
  return {
    ...sel,
    internal: policy.internalTrafficPolicy === 'Local' ? sel.localEndpoints : sel.clusterEndpoints,
    external: policy.externalTrafficPolicy === 'Local' && policy.externallyAccessible ? sel.localEndpoints : sel.clusterEndpoints,
  };
}
