import type { ServiceView } from '../../model/service-view.js';
import { portMatch, unservedPortRule } from '../shared/iptables-fixed.js';
import { type RealServer, type VirtualServer, virtualServerKey } from './ipvsadm.js';
import type { IpvsOptions } from './options.js';

/** One virtual server with the real servers it should have (all weight 1). */
export interface WantedVirtualServer {
  readonly vs: VirtualServer;
  readonly reals: readonly RealServer[];
}

/** Everything one Service contributes in IPVS mode; immutable, cached until the Service or its endpoints change. */
export interface IpvsFragment {
  /** The ClusterIP bound to kube-ipvs0, so the kernel delivers it locally where IPVS picks it up. */
  readonly address: string | undefined;
  readonly virtualServers: readonly WantedVirtualServer[];
  /** KUBE-CLUSTER-IP members (`VIP,proto:port`): masquerade marking and the IPVS filter's allow list. */
  readonly clusterIpMembers: readonly string[];
  /** KUBE-LOOP-BACK members (`ip,proto:port,ip`) of local endpoints: a pod reaching itself is masqueraded. */
  readonly loopbackMembers: readonly string[];
  /** filter KUBE-SERVICES rules (REJECT / DROP), as the iptables backend writes them. */
  readonly filterRules: readonly string[];
}

const EMPTY: IpvsFragment = { address: undefined, virtualServers: [], clusterIpMembers: [], loopbackMembers: [], filterRules: [] };

/**
 * Renders one Service as kube-proxy's IPVS mode programs it: a virtual server per ClusterIP, port and protocol
 * whose masquerading real servers are the endpoints CategorizeEndpoints picks (local ones for
 * internalTrafficPolicy Local), with persistence for ClientIP affinity. A port nothing may serve gets no
 * virtual server, only the REJECT/DROP rule: IPVS would otherwise claim the node's own connections before
 * filter OUTPUT could drop them (upstream keeps an empty virtual server, which IPVS answers with ICMP
 * port-unreachable, so its Local-policy DROP is a REJECT for the node itself).
 */
export function renderIpvsFragment(view: ServiceView, opts: IpvsOptions): IpvsFragment {
  const { service, clusterIP } = view;
  if (clusterIP === undefined) return EMPTY;
  const virtualServers: WantedVirtualServer[] = [];
  const clusterIpMembers: string[] = [];
  const loopbackMembers: string[] = [];
  const filterRules: string[] = [];
  const persistenceSeconds = service.sessionAffinity.type === 'ClientIP' ? service.sessionAffinity.timeoutSeconds : undefined;
  for (const { port, name: spn, proto, selection: sel } of view.ports) {
    const chosen = sel.internal;
    clusterIpMembers.push(`${clusterIP},${proto}:${port.port}`);
    const unserved = unservedPortRule(spn, portMatch(proto, clusterIP, port.port), sel.hasAnyEndpoints, chosen.length > 0);
    if (unserved !== undefined) filterRules.push(unserved);
    if (chosen.length === 0) continue;
    virtualServers.push({
      vs: {
        key: virtualServerKey(proto, clusterIP, port.port),
        protocol: proto,
        address: clusterIP,
        port: port.port,
        scheduler: opts.scheduler,
        persistenceSeconds,
      },
      reals: chosen.map((ep) => ({ hostPort: ep.hostPort, weight: 1 })),
    });
    // Only an endpoint on this node can reach itself through this node's IPVS (upstream's rule too).
    for (const ep of chosen) if (ep.isLocal) loopbackMembers.push(`${ep.ip},${proto}:${ep.port},${ep.ip}`);
  }
  return { address: clusterIP, virtualServers, clusterIpMembers, loopbackMembers, filterRules };
}
