import { type MaskedCidr, cidrContains, parseCidrMasked, parseIP } from '../../model/ip.js';
import type { ServiceView } from '../../model/service-view.js';
import type { Endpoint } from '../../model/types.js';
import {
  KUBE_EXTERNAL_SERVICES,
  KUBE_IPVS_OUT_FILTER,
  KUBE_LOOP_BACK,
  KUBE_SERVICES,
  isLoopback,
  portMatch,
  sharedRule,
  unservedPortRule,
} from '../shared/iptables-fixed.js';
import { type IpvsProtocol, type RealServer, type VirtualServer, type VirtualServerKey, virtualServerKey } from './ipvsadm.js';
import type { IpvsOptions } from './options.js';
import {
  KUBE_CLUSTER_IP,
  KUBE_EXTERNAL_IP,
  KUBE_EXTERNAL_IP_LOCAL,
  KUBE_HEALTH_CHECK_NODE_PORT,
  KUBE_LOAD_BALANCER,
  KUBE_LOAD_BALANCER_FW,
  KUBE_LOAD_BALANCER_LOCAL,
  KUBE_LOAD_BALANCER_SOURCE_CIDR,
  KUBE_LOAD_BALANCER_SOURCE_IP,
  KUBE_NODE_PORT_LOCAL_SCTP,
  KUBE_NODE_PORT_LOCAL_TCP,
  KUBE_NODE_PORT_LOCAL_UDP,
  KUBE_NODE_PORT_SCTP,
  KUBE_NODE_PORT_TCP,
  KUBE_NODE_PORT_UDP,
} from './sets.js';

/** One virtual server with the real servers it should have (all weight 1). */
export interface WantedVirtualServer {
  readonly vs: VirtualServer;
  readonly reals: readonly RealServer[];
}

/** Everything one Service contributes in IPVS mode; immutable, cached until the Service or its endpoints change. */
export interface IpvsFragment {
  /**
   * Addresses bound to kube-ipvs0, so the kernel delivers them locally where IPVS picks them up: the ClusterIP,
   * the external IPs and the load-balancer IPs (NodePorts use the node's own addresses).
   */
  readonly addresses: readonly string[];
  readonly virtualServers: readonly WantedVirtualServer[];
  /**
   * Virtual servers of existing service ports that nothing may serve now: not created, but an existing one
   * keeps draining connections rather than going at once (NodePorts, whose addresses say nothing of the Service).
   */
  readonly idle: readonly VirtualServerKey[];
  /** Members of our sets, `[set, member]` (see sets.ts), each once. */
  readonly members: ReadonlyArray<readonly [string, string]>;
  /** Rules in shared filter chains (REJECT / DROP, the out filter), `CHAIN spec` (see sharedRule). */
  readonly filterRules: readonly string[];
}

const EMPTY: IpvsFragment = { addresses: [], virtualServers: [], idle: [], members: [], filterRules: [] };

const NODE_PORT_SETS: Record<IpvsProtocol, readonly [string, string]> = {
  tcp: [KUBE_NODE_PORT_TCP, KUBE_NODE_PORT_LOCAL_TCP],
  udp: [KUBE_NODE_PORT_UDP, KUBE_NODE_PORT_LOCAL_UDP],
  sctp: [KUBE_NODE_PORT_SCTP, KUBE_NODE_PORT_LOCAL_SCTP],
};

/**
 * The addresses NodePorts get virtual servers on: the listed ones, or with `all` every local address
 * (`nodePortIPs`, else the node's IPs); never loopback (IPVS cannot serve it), IPv6 link-local or the other
 * family's, as upstream's isValidForSet.
 */
export function nodePortAddressesOf(opts: IpvsOptions, nodeIPs: readonly string[]): string[] {
  const base = opts.nodePortAddresses === 'all' ? (opts.nodePortIPs ?? nodeIPs) : opts.nodePortAddresses;
  const out = new Set<string>();
  for (const text of base) {
    const ip = parseIP(text);
    if (ip === undefined || ip.family !== opts.family || isLoopback(ip.text) || /^fe[89ab]/i.test(ip.text)) continue;
    out.add(ip.text);
  }
  return [...out];
}

/**
 * A source range as a hash:ip,port,net member can hold it: the kernel refuses a /0 net, so that is two halves,
 * and ipset prints a full-length prefix as a bare address, so a /32 (/128) is written so.
 */
function sourceNets(cidr: MaskedCidr): string[] {
  const width = cidr.family === 'IPv4' ? 32 : 128;
  if (cidr.prefix === 0) return cidr.family === 'IPv4' ? ['0.0.0.0/1', '128.0.0.0/1'] : ['::/1', '8000::/1'];
  const slash = cidr.text.indexOf('/');
  return [cidr.prefix === width ? cidr.text.slice(0, slash) : cidr.text];
}

/**
 * Renders one Service as kube-proxy's IPVS mode programs it: per port and protocol a virtual server on the
 * ClusterIP, on each external and load-balancer IP and, for a NodePort, on each NodePort address, whose
 * masquerading real servers are the endpoints CategorizeEndpoints picks (local ones under a Local policy), with
 * persistence for ClientIP affinity; the set members that drive the fixed iptables rules (rules.ts); and the
 * REJECT/DROP rules of addresses nothing may serve.
 *
 * A port nothing may serve gets no virtual server, only the REJECT/DROP rule: IPVS would otherwise claim the
 * node's own connections before filter OUTPUT could drop them (upstream keeps an empty virtual server, which
 * IPVS answers with ICMP port-unreachable). externalTrafficPolicy Local without a local endpoint: the external
 * virtual servers keep upstream's fallback to every endpoint, for pods and the node itself, and filter
 * KUBE-EXTERNAL-SERVICES drops everyone else's traffic, as the other backends do (upstream IPVS serves it).
 */
export function renderIpvsFragment(view: ServiceView, opts: IpvsOptions, nodePortIPs: readonly string[], nodeIPs: readonly string[]): IpvsFragment {
  const { service, clusterIP } = view;
  if (clusterIP === undefined) return EMPTY;
  const addresses = new Set<string>([clusterIP, ...view.externalIPs, ...view.loadBalancerIPs]);
  const virtualServers: WantedVirtualServer[] = [];
  const idle: VirtualServerKey[] = [];
  const members = new Map<string, Set<string>>();
  const member = (set: string, m: string): void => {
    let s = members.get(set);
    if (s === undefined) members.set(set, (s = new Set()));
    s.add(m);
  };
  const filterRules: string[] = [];
  const persistenceSeconds = service.sessionAffinity.type === 'ClientIP' ? service.sessionAffinity.timeoutSeconds : undefined;
  const eTPLocal = service.externalTrafficPolicy === 'Local';
  const ranges = view.sourceRanges.map(parseCidrMasked).filter((c): c is MaskedCidr => c !== undefined && c.family === opts.family);
  // upstream: the node may reach its own LB IPs (from the LB IP, bound locally) when a range holds a node IP.
  const nodeInRanges = ranges.some((cidr) => nodeIPs.some((ip) => cidrContains(cidr, ip)));
  // Without a pod CIDR pods cannot be told from outside clients, and are dropped with them (as in iptables mode).
  const notPods = opts.clusterCidr === undefined ? '' : ` ! -s ${opts.clusterCidr}`;

  for (const { port, name: spn, proto, selection: sel, nodePort } of view.ports) {
    const hasEndpoints = sel.hasAnyEndpoints;
    const addVirtualServer = (address: string, vport: number, reals: readonly Endpoint[]): void => {
      const key = virtualServerKey(proto, address, vport);
      if (reals.length === 0) {
        idle.push(key);
        return;
      }
      virtualServers.push({
        vs: { key, protocol: proto, address, port: vport, scheduler: opts.scheduler, persistenceSeconds },
        reals: reals.map((ep) => ({ hostPort: ep.hostPort, weight: 1 })),
      });
      // Only an endpoint on this node can reach itself through this node's IPVS (upstream's rule too).
      for (const ep of reals) if (ep.isLocal) member(KUBE_LOOP_BACK, `${ep.ip},${proto}:${ep.port},${ep.ip}`);
    };

    // The ClusterIP.
    const internal = sel.internal;
    member(KUBE_CLUSTER_IP, `${clusterIP},${proto}:${port.port}`);
    const unserved = unservedPortRule(spn, portMatch(proto, clusterIP, port.port), hasEndpoints, internal.length > 0);
    if (unserved !== undefined) filterRules.push(sharedRule(KUBE_SERVICES, unserved));
    addVirtualServer(clusterIP, port.port, internal);

    // External destinations. Upstream's fallback: no local endpoint under eTP Local serves every endpoint.
    const hasExternalEndpoints = sel.external.length > 0;
    const externalReals = hasExternalEndpoints ? sel.external : hasEndpoints ? sel.clusterEndpoints : [];
    const externalUnserved = (match: string): void => {
      if (!hasEndpoints) {
        filterRules.push(sharedRule(KUBE_EXTERNAL_SERVICES, `-m comment --comment "${spn} has no endpoints" ${match} -j REJECT`));
      } else if (!hasExternalEndpoints) {
        filterRules.push(
          sharedRule(
            KUBE_EXTERNAL_SERVICES,
            `-m comment --comment "${spn} has no local endpoints"${notPods} -m addrtype ! --src-type LOCAL ${match} -j DROP`,
          ),
        );
      }
    };

    for (const ip of view.externalIPs) {
      member(eTPLocal ? KUBE_EXTERNAL_IP_LOCAL : KUBE_EXTERNAL_IP, `${ip},${proto}:${port.port}`);
      externalUnserved(portMatch(proto, ip, port.port));
      addVirtualServer(ip, port.port, externalReals);
    }

    for (const ip of view.loadBalancerIPs) {
      const entry = `${ip},${proto}:${port.port}`;
      member(KUBE_LOAD_BALANCER, entry);
      if (eTPLocal) member(KUBE_LOAD_BALANCER_LOCAL, entry);
      if (ranges.length > 0) {
        member(KUBE_LOAD_BALANCER_FW, entry);
        for (const cidr of ranges) for (const net of sourceNets(cidr)) member(KUBE_LOAD_BALANCER_SOURCE_CIDR, `${entry},${net}`);
        if (nodeInRanges) member(KUBE_LOAD_BALANCER_SOURCE_IP, `${entry},${ip}`);
        // The node's own connections meet IPVS before any filter rule: upstream drops them after it, by the
        // virtual server they were given to.
        else filterRules.push(sharedRule(KUBE_IPVS_OUT_FILTER, `-s ${ip} -m ipvs --vaddr ${ip} --vproto ${proto} --vport ${port.port} -j DROP`));
      }
      externalUnserved(portMatch(proto, ip, port.port));
      addVirtualServer(ip, port.port, externalReals);
    }

    if (nodePort !== 0) {
      const [set, localSet] = NODE_PORT_SETS[proto];
      for (const m of proto === 'sctp' ? nodePortIPs.map((ip) => `${ip},sctp:${nodePort}`) : [String(nodePort)]) {
        member(set, m);
        if (eTPLocal) member(localSet, m);
      }
      for (const ip of nodePortIPs) {
        externalUnserved(portMatch(proto, ip, nodePort));
        addVirtualServer(ip, nodePort, externalReals);
      }
    }
  }
  // The health-check node port is open whatever the endpoints (the health server answers 503 itself).
  if (service.healthCheckNodePort !== 0 && view.ports.length > 0) member(KUBE_HEALTH_CHECK_NODE_PORT, String(service.healthCheckNodePort));

  const flat: Array<readonly [string, string]> = [];
  for (const [set, ms] of members) for (const m of ms) flat.push([set, m]);
  return { addresses: [...addresses], virtualServers, idle, members: flat, filterRules };
}
