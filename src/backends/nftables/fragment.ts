import { exactSize } from '../../exact-size.js';
import type { NftElement } from '../../kernel/syntax/nft.js';
import { joinHostPort } from '../../model/ip.js';
import type { ServiceKey } from '../../model/types.js';
import type { ServiceView } from '../../model/service-view.js';
import { type HairpinKey, hairpinKey } from '../shared/hairpin-members.js';
import { affinitySet, endpointBase, endpointChain, loadBalancerChain, localChain, serviceChain, servicePortBase } from './names.js';
import { type NftablesOptions, familySyntax } from './options.js';
import { CLUSTER_IPS, type ManagedSet, NO_ENDPOINT_SERVICES, REJECT_CHAIN, SERVICE_ENDPOINTS, SERVICE_IPS } from './fixed-chains.js';

/** One element of a managed set or map. */
export interface Element extends NftElement {
  readonly set: ManagedSet;
}

/** A shared load-balancing chain a fragment's elements jump to. */
export interface LoadBalancer {
  readonly name: string;
  readonly protocol: string;
  readonly count: number;
}

/**
 * Everything one Service contributes to the table. Immutable and cached until the Service or its endpoints
 * change; a partial sync diffs the applied fragment against the new one.
 */
export interface NftFragment {
  readonly key: ServiceKey;
  /** Elements of the Service's own (never shared) keys in the managed sets and maps. */
  readonly elements: readonly Element[];
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
const NO_SETS: ReadonlyMap<string, number> = new Map();

/**
 * Renders one Service with kube-proxy's nftables semantics: a service-ips element per served port, REJECT or
 * DROP through no-endpoint-services when nothing may serve it, masquerade and hairpin through the fixed
 * chains' sets. Load balancing without affinity is data only: the port's endpoints by index in
 * @service-endpoints and a jump to the shared chain for its endpoint count, so an endpoint change rewrites
 * elements, never a rule. With ClientIP affinity the port keeps upstream's chains: a service (or local)
 * chain, one chain and one timeout set per endpoint.
 */
export function renderNftFragment(view: ServiceView, opts: NftablesOptions): NftFragment {
  const f = familySyntax(opts.family);
  const { service, clusterIP } = view;
  const elements: Element[] = [];
  const hairpin: HairpinKey[] = [];
  const loadBalancers: LoadBalancer[] = [];
  let chains: Map<string, string> | undefined;
  let sets: Map<string, number> | undefined;
  if (clusterIP === undefined) return { key: service.key, elements, hairpin, loadBalancers, chains: NO_CHAINS, sets: NO_SETS };
  elements.push({ set: CLUSTER_IPS, key: clusterIP });
  const affinity = service.sessionAffinity.type === 'ClientIP' ? service.sessionAffinity.timeoutSeconds : undefined;

  for (const { port, spn: spnParts, name: spn, proto, selection: sel } of view.ports) {
    const key = `${clusterIP} . ${proto} . ${port.port}`;
    const iTPLocal = service.internalTrafficPolicy === 'Local';
    const used = sel.internal;
    if (!sel.hasAnyEndpoints) {
      elements.push({ set: NO_ENDPOINT_SERVICES, key, comment: spn, value: `goto ${REJECT_CHAIN}` });
      continue;
    }
    if (used.length === 0) {
      elements.push({ set: NO_ENDPOINT_SERVICES, key, comment: spn, value: 'drop' });
      continue;
    }
    for (const ep of used) hairpin.push(hairpinKey(ep.ip, proto, ep.port));
    if (affinity === undefined) {
      const lb = loadBalancerChain(port.protocol, used.length);
      loadBalancers.push({ name: lb, protocol: proto, count: used.length });
      elements.push({ set: SERVICE_IPS, key, value: `goto ${lb}` });
      used.forEach((ep, i) => elements.push({ set: SERVICE_ENDPOINTS, key: `${key} . ${i}`, value: `${ep.ip} . ${ep.port}` }));
      continue;
    }
    const base = servicePortBase(spnParts);
    const portChain = iTPLocal ? localChain(base) : serviceChain(base);
    elements.push({ set: SERVICE_IPS, key, value: `goto ${portChain}` });
    chains ??= new Map();
    sets ??= new Map();
    const sticky: string[] = [];
    const pick: string[] = [];
    used.forEach((ep, i) => {
      const epBase = endpointBase(base, ep);
      const chain = endpointChain(epBase);
      const set = affinitySet(epBase);
      sets!.set(set, affinity);
      sticky.push(`${f.match} saddr @${set} goto ${chain}`);
      pick.push(`${i} : goto ${chain}`);
      chains!.set(chain, [`update @${set} { ${f.match} saddr }`, `meta l4proto ${proto} dnat to ${joinHostPort(ep.ip, ep.port)}`].join('\n'));
    });
    chains.set(portChain, [...sticky, `numgen random mod ${used.length} vmap { ${pick.join(' , ')} }`].join('\n'));
  }
  return {
    key: service.key,
    elements: exactSize(elements),
    hairpin: exactSize(hairpin),
    loadBalancers: exactSize(loadBalancers),
    chains: chains ?? NO_CHAINS,
    sets: sets ?? NO_SETS,
  };
}

/** The hairpin set's element for one endpoint: traffic from it, to it (after DNAT), on its port. */
export function hairpinElement(ep: { ip: string; proto: string; port: number }): string {
  return `${ep.ip} . ${ep.ip} . ${ep.proto} . ${ep.port}`;
}

