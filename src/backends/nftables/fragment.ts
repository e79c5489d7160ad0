import { exactSize } from '../../exact-size.js';
import type { NftElement } from '../../kernel/syntax/nft.js';
import { cidrContains, joinHostPort, parseCidrMasked } from '../../model/ip.js';
import type { Endpoint, ServiceKey } from '../../model/types.js';
import type { ServiceView } from '../../model/service-view.js';
import { type HairpinKey, hairpinKey } from '../shared/hairpin-members.js';
import {
  affinitySet,
  endpointBase,
  endpointChain,
  externalChain,
  firewallChain,
  type LoadBalancerKind,
  loadBalancerChain,
  localChain,
  serviceChain,
  servicePortBase,
} from './names.js';
import { type FamilySyntax, type NftablesOptions, familySyntax } from './options.js';
import {
  CLUSTER_IPS,
  FIREWALL_IPS,
  type ManagedSet,
  NO_ENDPOINT_NODEPORTS,
  NO_ENDPOINT_SERVICES,
  REJECT_CHAIN,
  nodePortEndpoints,
  serviceEndpoints,
  SERVICE_IPS,
  SERVICE_NODEPORTS,
  type L4Protocol,
} from './fixed-chains.js';

/** One element of a managed set or map. */
export interface Element extends NftElement {
  readonly set: ManagedSet;
}

/**
 * A port's endpoints in an endpoints map, kept compact: elements `<prefix> . <i> : values[i]`, expanded only
 * while a transaction is written. At 10,000 Services x 10 endpoints (x 2 with NodePorts) one object and one key
 * string per element cost tens of MB; the values array is shared by the ClusterIP and NodePort runs.
 */
export interface EndpointRun {
  readonly set: ManagedSet;
  readonly prefix: string;
  readonly values: readonly string[];
}

export type FragmentItem = Element | EndpointRun;

/** The elements of a fragment's items, in order. */
export function* expandItems(items: readonly FragmentItem[]): Generator<Element> {
  for (const item of items) {
    if (!('prefix' in item)) {
      yield item;
      continue;
    }
    for (let i = 0; i < item.values.length; i++) yield { set: item.set, key: `${item.prefix} . ${i}`, value: item.values[i]! };
  }
}

/** A shared load-balancing chain a fragment's elements jump to. */
export interface LoadBalancer {
  readonly name: string;
  readonly kind: LoadBalancerKind;
  readonly protocol: L4Protocol;
  readonly count: number;
}

/**
 * Everything one Service contributes to the table. Immutable and cached until the Service or its endpoints
 * change; a partial sync diffs the applied fragment against the new one.
 */
export interface NftFragment {
  readonly key: ServiceKey;
  /** Elements of the Service's own (never shared) keys in the managed sets and maps. */
  readonly elements: readonly FragmentItem[];
  /** Its endpoints in the shared hairpin set (Services may share an endpoint ip:port). */
  readonly hairpin: readonly HairpinKey[];
  /** The shared load-balancing chains its service-ips elements jump to. */
  readonly loadBalancers: readonly LoadBalancer[];
  /** Session-affinity Services only: their own chains, name → rule bodies (one per line). */
  readonly chains: ReadonlyMap<string, string>;
  /** Session-affinity Services only: their per-endpoint affinity sets, name → timeout in seconds. */
  readonly sets: ReadonlyMap<string, number>;
}

const NO_CHAINS: ReadonlyMap<string, string> = new Map();

// What a dispatch element's comment says after the ServicePortName, in kube-proxy's iptables words, so the
// kernel's table names the Service port each address and port belongs to (`switchboard trace --live` reads it).
const CLUSTER_IP = 'cluster IP';
const EXTERNAL_IP = 'external IP';
const LOAD_BALANCER_IP = 'loadbalancer IP';
const NO_SETS: ReadonlyMap<string, number> = new Map();

/**
 * Renders one Service with kube-proxy's nftables semantics: a service-ips element per served port, REJECT or
 * DROP through no-endpoint-services when nothing may serve it, masquerade and hairpin through the fixed
 * chains' sets. Load balancing without affinity is data only: the port's endpoints by index in
 * @service-endpoints-<proto> (by ClusterIP, external or load-balancer IP) or @nodeport-endpoints-<proto> (by NodePort) and a
 * jump to the shared chain for its kind and endpoint count, so an endpoint change rewrites elements, never a
 * rule. Under externalTrafficPolicy Cluster that covers external traffic too: upstream's external chain only
 * marks for masquerading before its service chain, which the `masq` and `nodeport` shared chains do.
 * Ports with ClientIP affinity, and externally accessible ports with externalTrafficPolicy Local (whose
 * external and short-circuited traffic pick from different endpoint lists on the same key), keep upstream's
 * chains: a service (cluster policy) and a local (local policy) chain,
 * one chain per endpoint (and one timeout set per endpoint with affinity), an external chain that external
 * addresses and NodePorts go to, and a firewall chain for load-balancer source ranges.
 *
 * `nodeIP` is the node's primary IP of the family: the firewall lets it (and so the LB IPs it is SNATted to)
 * through when a source range holds it, as upstream does.
 */
export function renderNftFragment(view: ServiceView, opts: NftablesOptions, nodeIP: string | undefined = undefined): NftFragment {
  const f = familySyntax(opts.family);
  const { service, clusterIP } = view;
  const elements: FragmentItem[] = [];
  const hairpin: HairpinKey[] = [];
  const endpointValues = new Map<readonly Endpoint[], readonly string[]>();
  const loadBalancers: LoadBalancer[] = [];
  let chains: Map<string, string> | undefined;
  let sets: Map<string, number> | undefined;
  if (clusterIP === undefined) return { key: service.key, elements, hairpin, loadBalancers, chains: NO_CHAINS, sets: NO_SETS };
  elements.push({ set: CLUSTER_IPS, key: clusterIP });
  const affinity = service.sessionAffinity.type === 'ClientIP' ? service.sessionAffinity.timeoutSeconds : undefined;
  const iTPLocal = service.internalTrafficPolicy === 'Local';
  const eTPLocal = service.externalTrafficPolicy === 'Local';
  const mark = `meta mark set meta mark | ${opts.masqueradeMark}`;
  // Upstream's usesFWChain in nftables mode: no endpoint condition (the firewall applies before DNAT).
  const usesFirewall = view.loadBalancerIPs.length > 0 && view.sourceRanges.length > 0;
  const firewallRule = usesFirewall ? firewallDropRule(f, view, nodeIP) : undefined;

  for (const { port, spn: spnParts, name: spn, proto, selection: sel, nodePort, externallyAccessible } of view.ports) {
    const key = `${clusterIP} . ${proto} . ${port.port}`;
    const hasEndpoints = sel.hasAnyEndpoints;
    const hasInternalEndpoints = sel.internal.length > 0;
    const hasExternalEndpoints = sel.external.length > 0;
    const unserved = hasEndpoints ? 'drop' : `goto ${REJECT_CHAIN}`;
    const used = sel.internal;
    if (affinity === undefined && !(externallyAccessible && eTPLocal)) {
      // Load balancing as data: the ClusterIP, and an eTP Cluster port's external addresses and NodePort.
      // `at`: the dispatch element's key, and the endpoints map's key (the same without the protocol) for it.
      const balance = (kind: LoadBalancerKind, list: readonly Endpoint[], dispatch: ManagedSet, at: readonly (readonly [string, string, string])[]): void => {
        const lb = loadBalancerChain(kind, port.protocol, list.length);
        loadBalancers.push({ name: lb, kind, protocol: proto, count: list.length });
        const map = kind === 'nodeport' ? nodePortEndpoints(proto) : serviceEndpoints(proto);
        for (const [k, , comment] of at) elements.push({ set: dispatch, key: k, comment, value: `goto ${lb}` });
        let values = endpointValues.get(list);
        if (values === undefined) {
          values = exactSize(list.map((ep) => `${ep.ip} . ${ep.port}`));
          endpointValues.set(list, values);
          for (const ep of list) hairpin.push(hairpinKey(ep.ip, proto, ep.port));
        }
        for (const [, prefix] of at) elements.push({ set: map, prefix, values });
      };
      const byAddress = (ip: string, what: string) => [`${ip} . ${proto} . ${port.port}`, `${ip} . ${port.port}`, `${spn} ${what}`] as const;
      if (hasInternalEndpoints) balance('cluster', used, SERVICE_IPS, [byAddress(clusterIP, CLUSTER_IP)]);
      else elements.push({ set: NO_ENDPOINT_SERVICES, key, comment: spn, value: unserved });
      if (!externallyAccessible) continue;
      const fw = firewallChain(servicePortBase(spnParts));
      if (firewallRule !== undefined) {
        chains ??= new Map();
        chains.set(fw, firewallRule);
      }
      const external = [...view.externalIPs.map((ip) => byAddress(ip, EXTERNAL_IP)), ...view.loadBalancerIPs.map((ip) => byAddress(ip, LOAD_BALANCER_IP))];
      if (hasExternalEndpoints && external.length > 0) balance('masq', sel.external, SERVICE_IPS, external);
      if (firewallRule !== undefined) for (const ip of view.loadBalancerIPs) elements.push({ set: FIREWALL_IPS, key: byAddress(ip, LOAD_BALANCER_IP)[0], value: `goto ${fw}` });
      if (!hasExternalEndpoints) for (const [k] of external) elements.push({ set: NO_ENDPOINT_SERVICES, key: k, comment: spn, value: unserved });
      if (nodePort !== 0) {
        const k = `${proto} . ${nodePort}`;
        if (hasExternalEndpoints) balance('nodeport', sel.external, SERVICE_NODEPORTS, [[k, String(nodePort), spn]]);
        else elements.push({ set: NO_ENDPOINT_NODEPORTS, key: k, comment: spn, value: unserved });
      }
      continue;
    }

    // Upstream's chains. Policy chains exist when they have endpoints; their endpoints' chains come first.
    const base = servicePortBase(spnParts);
    const clusterPolicyChain = serviceChain(base);
    const localPolicyChain = localChain(base);
    const clusterEndpoints = sel.clusterEndpoints;
    const localEndpoints = sel.localEndpoints;
    chains ??= new Map();
    const epChains = new Map<string, string>();
    for (const ep of [...clusterEndpoints, ...localEndpoints]) {
      if (epChains.has(ep.hostPort)) continue;
      const epBase = endpointBase(base, ep);
      const chain = endpointChain(epBase);
      epChains.set(ep.hostPort, chain);
      hairpin.push(hairpinKey(ep.ip, proto, ep.port));
      const dnat = `meta l4proto ${proto} dnat to ${joinHostPort(ep.ip, ep.port)}`;
      if (affinity === undefined) {
        chains.set(chain, dnat);
        continue;
      }
      sets ??= new Map();
      const set = affinitySet(epBase);
      sets.set(set, affinity);
      chains.set(chain, [`update @${set} { ${f.match} saddr }`, dnat].join('\n'));
    }
    const policyRules = (list: readonly Endpoint[]): string => {
      const sticky: string[] = [];
      const pick: string[] = [];
      list.forEach((ep, i) => {
        const chain = epChains.get(ep.hostPort)!;
        if (affinity !== undefined) sticky.push(`${f.match} saddr @${affinitySet(endpointBase(base, ep))} goto ${chain}`);
        pick.push(`${i} : goto ${chain}`);
      });
      return [...sticky, `numgen random mod ${list.length} vmap { ${pick.join(' , ')} }`].join('\n');
    };
    if (clusterEndpoints.length > 0) chains.set(clusterPolicyChain, policyRules(clusterEndpoints));
    if (localEndpoints.length > 0) chains.set(localPolicyChain, policyRules(localEndpoints));

    // The external chain: masquerade (eTP Cluster) or the short-circuits (eTP Local), then the policy chain.
    const ext = externalChain(base);
    const usesExternalChain = hasEndpoints && externallyAccessible;
    if (usesExternalChain) {
      const rules: string[] = [];
      if (!eTPLocal) rules.push(mark);
      else {
        if (opts.clusterCidr !== undefined) rules.push(`${f.match} saddr ${opts.clusterCidr} goto ${clusterPolicyChain} comment "short-circuit pod traffic"`);
        rules.push(`fib saddr type local ${mark} comment "masquerade local traffic"`);
        rules.push(`fib saddr type local goto ${clusterPolicyChain} comment "short-circuit local traffic"`);
      }
      if (hasExternalEndpoints) rules.push(`goto ${eTPLocal ? localPolicyChain : clusterPolicyChain}`);
      chains.set(ext, rules.join('\n'));
    }
    const fw = firewallChain(base);
    if (firewallRule !== undefined) chains.set(fw, firewallRule);

    // Elements, in upstream's order.
    if (hasInternalEndpoints) elements.push({ set: SERVICE_IPS, key, comment: `${spn} ${CLUSTER_IP}`, value: `goto ${iTPLocal ? localPolicyChain : clusterPolicyChain}` });
    else elements.push({ set: NO_ENDPOINT_SERVICES, key, comment: spn, value: unserved });
    for (const ip of view.externalIPs) {
      const k = `${ip} . ${proto} . ${port.port}`;
      if (usesExternalChain) elements.push({ set: SERVICE_IPS, key: k, comment: `${spn} ${EXTERNAL_IP}`, value: `goto ${ext}` });
      if (!hasExternalEndpoints) elements.push({ set: NO_ENDPOINT_SERVICES, key: k, comment: spn, value: unserved });
    }
    for (const ip of view.loadBalancerIPs) {
      const k = `${ip} . ${proto} . ${port.port}`;
      if (usesExternalChain) elements.push({ set: SERVICE_IPS, key: k, comment: `${spn} ${LOAD_BALANCER_IP}`, value: `goto ${ext}` });
      if (firewallRule !== undefined) elements.push({ set: FIREWALL_IPS, key: k, value: `goto ${fw}` });
    }
    if (!hasExternalEndpoints) {
      for (const ip of view.loadBalancerIPs) elements.push({ set: NO_ENDPOINT_SERVICES, key: `${ip} . ${proto} . ${port.port}`, comment: spn, value: unserved });
    }
    if (nodePort !== 0) {
      const k = `${proto} . ${nodePort}`;
      if (usesExternalChain) elements.push({ set: SERVICE_NODEPORTS, key: k, comment: spn, value: `goto ${ext}` });
      if (!hasExternalEndpoints) elements.push({ set: NO_ENDPOINT_NODEPORTS, key: k, comment: spn, value: unserved });
    }
  }
  return {
    key: service.key,
    elements: exactSize(elements),
    // The ClusterIP's, external addresses' and NodePort's endpoints are mostly the same ones.
    hairpin: exactSize([...new Set(hairpin)]),
    loadBalancers: exactSize(loadBalancers),
    chains: chains ?? NO_CHAINS,
    sets: sets ?? NO_SETS,
  };
}

/**
 * The firewall chain's one rule: drop sources outside the ranges. If a range holds the node's IP, the LB IPs are
 * let through too: something outside kube-proxy SNATs the node's own connections to an LB IP to that IP.
 */
function firewallDropRule(f: FamilySyntax, view: ServiceView, nodeIP: string | undefined): string {
  const sources: string[] = [];
  let allowFromNode = false;
  for (const text of view.sourceRanges) {
    if (!sources.includes(text)) sources.push(text);
    const cidr = parseCidrMasked(text);
    if (nodeIP !== undefined && cidr !== undefined && cidrContains(cidr, nodeIP)) allowFromNode = true;
  }
  if (allowFromNode) for (const ip of view.loadBalancerIPs) if (!sources.includes(ip)) sources.push(ip);
  return `${f.match} saddr != { ${sources.join(' , ')} } drop`;
}

/** The hairpin set's element for one endpoint: traffic from it, to it (after DNAT), on its port. */
export function hairpinElement(ep: { ip: string; proto: string; port: number }): string {
  return `${ep.ip} . ${ep.ip} . ${ep.proto} . ${ep.port}`;
}

