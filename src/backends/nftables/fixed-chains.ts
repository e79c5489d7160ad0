import { type BaseChainSpec, type NftOp, type NftSetObject, nft } from '../../kernel/syntax/nft.js';
import type { LoadBalancerKind } from './names.js';
import { type FamilySyntax, type NftablesOptions, familySyntax } from './options.js';

// The fixed part of the table, after kube-proxy's nftables mode (pkg/proxy/nftables/proxier.go, v1.36 shape:
// masquerade mark set inline, hairpin through a set, endpoint checks after DNAT and the load-balancer firewall
// before it as since v1.34).

export const SERVICES = 'services';
export const MASQUERADING = 'masquerading';
export const SERVICE_ENDPOINTS_CHECK = 'service-endpoints-check';
export const CLUSTER_IPS_CHECK = 'cluster-ips-check';
export const REJECT_CHAIN = 'reject-chain';
export const FIREWALL_CHECK = 'firewall-check';
export const NODEPORT_ENDPOINTS_CHECK = 'nodeport-endpoints-check';

export const CLUSTER_IPS = 'cluster-ips';
export const SERVICE_IPS = 'service-ips';
export const NO_ENDPOINT_SERVICES = 'no-endpoint-services';
export const HAIRPIN = 'hairpin-connections';
export const NODEPORT_IPS = 'nodeport-ips';
export const SERVICE_NODEPORTS = 'service-nodeports';
export const NO_ENDPOINT_NODEPORTS = 'no-endpoint-nodeports';
export const FIREWALL_IPS = 'firewall-ips';

/**
 * Ours: the endpoints of every load-balanced port of a protocol, keyed by destination address (ClusterIP,
 * external or load-balancer IP), port and index; and of every load-balanced NodePort (externalTrafficPolicy
 * Cluster), keyed by NodePort and index. One map per protocol: nft 1.0.6 cannot add a rule for another
 * protocol's port than the one in the `typeof` of a map the kernel already holds ("conflicting protocols"),
 * whether the key says `tcp dport`, `th dport` or `@th,16,16`.
 */
export const L4_PROTOCOLS = ['tcp', 'udp', 'sctp'] as const;
export type L4Protocol = (typeof L4_PROTOCOLS)[number];
export const serviceEndpoints = <P extends L4Protocol>(proto: P): `service-endpoints-${P}` => `service-endpoints-${proto}`;
export const nodePortEndpoints = <P extends L4Protocol>(proto: P): `nodeport-endpoints-${P}` => `nodeport-endpoints-${proto}`;
/** The one map of earlier versions, keyed by protocol too: a full sync deletes it. */
const LEGACY_SERVICE_ENDPOINTS = 'service-endpoints';

/** The sets and maps every sync owns whole: a full sync flushes and refills them. */
export const MANAGED_SETS = [
  CLUSTER_IPS,
  SERVICE_IPS,
  NO_ENDPOINT_SERVICES,
  HAIRPIN,
  ...L4_PROTOCOLS.map(serviceEndpoints),
  ...L4_PROTOCOLS.map(nodePortEndpoints),
  SERVICE_NODEPORTS,
  NO_ENDPOINT_NODEPORTS,
  FIREWALL_IPS,
  NODEPORT_IPS,
];
export type ManagedSet = (typeof MANAGED_SETS)[number];

interface ChainSpec {
  readonly name: string;
  readonly base?: BaseChainSpec;
  readonly comment?: string;
  readonly rules: readonly { readonly rule: string; readonly comment?: string }[];
}

const base = (type: BaseChainSpec['type'], hook: BaseChainSpec['hook'], priority: number): BaseChainSpec => ({ type, hook, priority });
const rules = (...list: string[]): ChainSpec['rules'] => list.map((rule) => ({ rule }));

function fixedChains(opts: NftablesOptions, f: FamilySyntax): ChainSpec[] {
  const mark = opts.masqueradeMark;
  const masqueradeFrom = opts.masqueradeAll ? '' : opts.clusterCidr !== undefined ? ` ${f.match} saddr != ${opts.clusterCidr}` : undefined;
  const services: { rule: string; comment?: string }[] = [];
  if (masqueradeFrom !== undefined) {
    const why = opts.masqueradeAll ? 'masquerade all clusterIP traffic' : 'masquerade clusterIP traffic from outside cluster';
    services.push({ rule: `${f.match} daddr @${CLUSTER_IPS}${masqueradeFrom} meta mark set meta mark | ${mark}`, comment: why });
  }
  services.push({ rule: `${f.match} daddr . meta l4proto . th dport vmap @${SERVICE_IPS}` });
  // NodePorts on the nodeport-ips, or (`all`, upstream's MatchAll) on every local address but loopback.
  const loopback = opts.family === 'IPv4' ? '127.0.0.0/8' : '::1';
  const nodePortDaddr = opts.nodePortAddresses === 'all' ? `${f.match} daddr != ${loopback}` : `${f.match} daddr @${NODEPORT_IPS}`;
  services.push({ rule: `${opts.nodePortAddresses === 'all' ? 'fib daddr type local ' : ''}${nodePortDaddr} meta l4proto . th dport vmap @${SERVICE_NODEPORTS}` });
  const newJump = (chain: string): string => `ct state new jump ${chain}`;
  return [
    { name: 'filter-prerouting-pre-dnat', base: base('filter', 'prerouting', -110), rules: rules(newJump(FIREWALL_CHECK)) },
    { name: 'filter-output-pre-dnat', base: base('filter', 'output', -110), rules: rules(newJump(FIREWALL_CHECK)) },
    { name: 'filter-input', base: base('filter', 'input', 0), rules: rules(newJump(NODEPORT_ENDPOINTS_CHECK), newJump(SERVICE_ENDPOINTS_CHECK)) },
    { name: 'filter-forward', base: base('filter', 'forward', 0), rules: rules(newJump(SERVICE_ENDPOINTS_CHECK), newJump(CLUSTER_IPS_CHECK)) },
    { name: 'filter-output', base: base('filter', 'output', 0), rules: rules(newJump(SERVICE_ENDPOINTS_CHECK), newJump(CLUSTER_IPS_CHECK)) },
    { name: 'nat-prerouting', base: base('nat', 'prerouting', -100), rules: rules(`jump ${SERVICES}`) },
    { name: 'nat-output', base: base('nat', 'output', -100), rules: rules(`jump ${SERVICES}`) },
    { name: 'nat-postrouting', base: base('nat', 'postrouting', 100), rules: rules(`jump ${MASQUERADING}`) },
    { name: SERVICES, rules: services },
    {
      name: MASQUERADING,
      rules: rules(
        `meta mark & ${mark} != 0 meta mark set meta mark ^ ${mark} masquerade fully-random`,
        `ct status dnat ${f.match} saddr . ${f.match} daddr . meta l4proto . th dport @${HAIRPIN} masquerade fully-random`,
      ),
    },
    { name: SERVICE_ENDPOINTS_CHECK, rules: rules(`${f.match} daddr . meta l4proto . th dport vmap @${NO_ENDPOINT_SERVICES}`) },
    { name: NODEPORT_ENDPOINTS_CHECK, rules: rules(`${nodePortDaddr} meta l4proto . th dport vmap @${NO_ENDPOINT_NODEPORTS}`) },
    { name: FIREWALL_CHECK, rules: rules(`${f.match} daddr . meta l4proto . th dport vmap @${FIREWALL_IPS}`) },
    { name: CLUSTER_IPS_CHECK, rules: [{ rule: `${f.match} daddr @${CLUSTER_IPS} reject`, comment: 'Reject traffic to invalid ports of ClusterIPs' }] },
    { name: REJECT_CHAIN, comment: 'helper for @no-endpoint-services / @no-endpoint-nodeports', rules: rules('reject') },
  ];
}

/** The managed sets and maps, declared (nodeport-ips only when NodePorts are not on every local address). */
function managedSets(opts: NftablesOptions, f: FamilySyntax): NftSetObject[] {
  const svcKey = `${f.addrType} . inet_proto . inet_service`;
  const nodePortIPs: NftSetObject[] =
    opts.nodePortAddresses === 'all' ? [] : [{ kind: 'set', name: NODEPORT_IPS, type: f.addrType, comment: 'IPs that accept NodePort traffic' }];
  return [
    { kind: 'set', name: CLUSTER_IPS, type: f.addrType, comment: 'Active ClusterIPs' },
    { kind: 'map', name: SERVICE_IPS, type: `${svcKey} : verdict`, comment: 'ClusterIP, ExternalIP and LoadBalancer IP traffic' },
    { kind: 'map', name: NO_ENDPOINT_SERVICES, type: `${svcKey} : verdict`, comment: 'vmap to drop or reject packets to services with no endpoints' },
    { kind: 'set', name: HAIRPIN, type: `${f.addrType} . ${f.addrType} . inet_proto . inet_service`, comment: 'service hairpin connections' },
    ...L4_PROTOCOLS.flatMap((p): NftSetObject[] => [
      {
        kind: 'map',
        name: serviceEndpoints(p),
        typeof: `${f.match} daddr . ${p} dport . numgen random mod 1 : ${f.match} daddr . ${p} dport`,
        comment: `endpoints of load-balanced ${p} service ports, by index`,
      },
      {
        kind: 'map',
        name: nodePortEndpoints(p),
        typeof: `${p} dport . numgen random mod 1 : ${f.match} daddr . ${p} dport`,
        comment: `endpoints of load-balanced ${p} NodePorts, by index`,
      },
    ]),
    { kind: 'map', name: SERVICE_NODEPORTS, type: 'inet_proto . inet_service : verdict', comment: 'NodePort traffic' },
    {
      kind: 'map',
      name: NO_ENDPOINT_NODEPORTS,
      type: 'inet_proto . inet_service : verdict',
      comment: 'vmap to drop or reject packets to service nodeports with no endpoints',
    },
    { kind: 'map', name: FIREWALL_IPS, type: `${svcKey} : verdict`, comment: 'destinations that are subject to LoadBalancerSourceRanges' },
    ...nodePortIPs,
  ];
}

/** `add`+`flush` for a chain, so its rules are exactly the ones that follow. */
export function* chainHeader(chain: Parameters<typeof nft.addChain>[0]): Generator<NftOp> {
  yield nft.addChain(chain);
  yield nft.flushChain(chain.name);
}

/** Every fixed chain name: the rest of the table is per-service, load-balancing or stale. */
export function fixedChainNames(opts: NftablesOptions): Set<string> {
  return new Set(fixedChains(opts, familySyntax(opts.family)).map((c) => c.name));
}

/**
 * The fixed part of a full sync: the table, its base and helper chains rewritten, and the managed sets
 * declared and emptied (the caller refills them). Sets are declared before the chains whose rules name them.
 */
export function* skeleton(opts: NftablesOptions): Generator<NftOp> {
  const f = familySyntax(opts.family);
  yield nft.addTable('rules for kube-proxy');
  for (const set of managedSets(opts, f)) {
    yield nft.addSet(set);
    yield nft.flushSet(set.kind, set.name);
  }
  const chains = fixedChains(opts, f);
  // Declared first (helpers before the chains jumping to them is not required within one transaction).
  for (const c of chains) yield* chainHeader({ name: c.name, ...(c.base ? { base: c.base } : {}), ...(c.comment ? { comment: c.comment } : {}) });
  if (opts.nodePortAddresses === 'all') {
    // As upstream: a nodeport-ips set left by another --nodeport-addresses goes (its rules were just flushed).
    yield nft.addSet({ kind: 'set', name: NODEPORT_IPS, type: f.addrType });
    yield nft.deleteSet('set', NODEPORT_IPS);
  }
  for (const c of chains) for (const r of c.rules) yield nft.addRule(c.name, r.rule, r.comment);
}

/** The shared load-balancing chain's rules (see names.ts loadBalancerChain). */
export function loadBalancerRules(opts: NftablesOptions, kind: LoadBalancerKind, protocol: L4Protocol, count: number): string[] {
  const f = familySyntax(opts.family);
  const pick = `numgen random mod ${count}`;
  const byAddress = `meta l4proto ${protocol} dnat to ${f.match} daddr . ${protocol} dport . ${pick} map @${serviceEndpoints(protocol)}`;
  if (kind === 'cluster') return [byAddress];
  const mark = `meta mark set meta mark | ${opts.masqueradeMark}`;
  if (kind === 'masq') return [mark, byAddress];
  return [mark, `meta l4proto ${protocol} dnat to ${protocol} dport . ${pick} map @${nodePortEndpoints(protocol)}`];
}

/**
 * The last operations of a full sync: the legacy map goes once nothing refers to it (every load-balancing
 * chain was rewritten or flushed above); declared first so that deleting it cannot fail when it is absent.
 */
export function* legacyCleanup(opts: NftablesOptions): Generator<NftOp> {
  const f = familySyntax(opts.family);
  const legacy = `${f.match} daddr . meta l4proto . tcp dport . numgen random mod 1 : ${f.match} daddr . tcp dport`;
  yield nft.addSet({ kind: 'map', name: LEGACY_SERVICE_ENDPOINTS, typeof: legacy });
  yield nft.deleteSet('map', LEGACY_SERVICE_ENDPOINTS);
}
