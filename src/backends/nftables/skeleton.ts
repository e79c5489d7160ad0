import { type FamilySyntax, type NftablesOptions, familySyntax } from './options.js';

// The fixed part of the table, after kube-proxy's nftables mode (pkg/proxy/nftables/proxier.go, v1.36 shape:
// masquerade mark set inline, hairpin through a set), reduced to what ClusterIP Services need.

export const SERVICES = 'services';
export const MASQUERADING = 'masquerading';
export const SERVICE_ENDPOINTS_CHECK = 'service-endpoints-check';
export const CLUSTER_IPS_CHECK = 'cluster-ips-check';
export const REJECT_CHAIN = 'reject-chain';

export const CLUSTER_IPS = 'cluster-ips';
export const SERVICE_IPS = 'service-ips';
export const NO_ENDPOINT_SERVICES = 'no-endpoint-services';
export const HAIRPIN = 'hairpin-connections';
/** Ours: the endpoints of every load-balanced port, keyed by ClusterIP, protocol, port and index. */
export const SERVICE_ENDPOINTS = 'service-endpoints';

/** The sets and maps every sync owns whole: a full sync flushes and refills them. */
export const MANAGED_SETS = [CLUSTER_IPS, SERVICE_IPS, NO_ENDPOINT_SERVICES, HAIRPIN, SERVICE_ENDPOINTS] as const;
export type ManagedSet = (typeof MANAGED_SETS)[number];

interface ChainSpec {
  readonly name: string;
  /** `type nat hook prerouting priority -100`, for base chains. */
  readonly base?: string;
  readonly comment?: string;
  readonly rules: readonly string[];
}

function fixedChains(opts: NftablesOptions, f: FamilySyntax): ChainSpec[] {
  const mark = opts.masqueradeMark;
  const masqueradeFrom = opts.masqueradeAll ? '' : opts.clusterCidr !== undefined ? ` ${f.match} saddr != ${opts.clusterCidr}` : undefined;
  const services: string[] = [];
  if (masqueradeFrom !== undefined) {
    const why = opts.masqueradeAll ? 'masquerade all clusterIP traffic' : 'masquerade clusterIP traffic from outside cluster';
    services.push(`${f.match} daddr @${CLUSTER_IPS}${masqueradeFrom} meta mark set meta mark | ${mark} comment "${why}"`);
  }
  services.push(`${f.match} daddr . meta l4proto . th dport vmap @${SERVICE_IPS}`);
  const newJump = (chain: string): string => `ct state new jump ${chain}`;
  return [
    { name: 'filter-input', base: 'type filter hook input priority 0', rules: [newJump(SERVICE_ENDPOINTS_CHECK)] },
    { name: 'filter-forward', base: 'type filter hook forward priority 0', rules: [newJump(SERVICE_ENDPOINTS_CHECK), newJump(CLUSTER_IPS_CHECK)] },
    { name: 'filter-output', base: 'type filter hook output priority 0', rules: [newJump(SERVICE_ENDPOINTS_CHECK), newJump(CLUSTER_IPS_CHECK)] },
    { name: 'nat-prerouting', base: 'type nat hook prerouting priority -100', rules: [`jump ${SERVICES}`] },
    { name: 'nat-output', base: 'type nat hook output priority -100', rules: [`jump ${SERVICES}`] },
    { name: 'nat-postrouting', base: 'type nat hook postrouting priority 100', rules: [`jump ${MASQUERADING}`] },
    { name: SERVICES, rules: services },
    {
      name: MASQUERADING,
      rules: [
        `meta mark & ${mark} != 0 meta mark set meta mark ^ ${mark} masquerade fully-random`,
        `ct status dnat ${f.match} saddr . ${f.match} daddr . meta l4proto . th dport @${HAIRPIN} masquerade fully-random`,
      ],
    },
    { name: SERVICE_ENDPOINTS_CHECK, rules: [`${f.match} daddr . meta l4proto . th dport vmap @${NO_ENDPOINT_SERVICES}`] },
    { name: CLUSTER_IPS_CHECK, rules: [`${f.match} daddr @${CLUSTER_IPS} reject comment "Reject traffic to invalid ports of ClusterIPs"`] },
    { name: REJECT_CHAIN, comment: 'helper for @no-endpoint-services', rules: ['reject'] },
  ];
}

/** Set and map declarations (the part inside `{ }`), by name. */
function setDeclarations(f: FamilySyntax): Record<ManagedSet, string> {
  const svcKey = `${f.addrType} . inet_proto . inet_service`;
  return {
    [CLUSTER_IPS]: `type ${f.addrType} ; comment "Active ClusterIPs" ;`,
    [SERVICE_IPS]: `type ${svcKey} : verdict ; comment "ClusterIP, ExternalIP and LoadBalancer IP traffic" ;`,
    [NO_ENDPOINT_SERVICES]: `type ${svcKey} : verdict ; comment "vmap to drop or reject packets to services with no endpoints" ;`,
    [HAIRPIN]: `type ${f.addrType} . ${f.addrType} . inet_proto . inet_service ; comment "service hairpin connections" ;`,
    // `tcp dport`, not `th dport`: nft 1.0.6 cannot add a rule naming a `th` key of a map the kernel already
    // holds after an l4proto match ("conflicting protocols"). Every protocol's port is the same 16 bits.
    [SERVICE_ENDPOINTS]:
      `typeof ${f.match} daddr . meta l4proto . tcp dport . numgen random mod 1 : ${f.match} daddr . tcp dport ; ` +
      'comment "endpoints of load-balanced service ports, by index" ;',
  };
}

function setKind(name: ManagedSet): 'set' | 'map' {
  return name === CLUSTER_IPS || name === HAIRPIN ? 'set' : 'map';
}

/** `add`+`flush` for a chain, so its rules are exactly the ones that follow. */
export function chainHeader(q: string, name: string, spec = ''): string {
  return `add chain ${q} ${name}${spec === '' ? '' : ` { ${spec} }`}\nflush chain ${q} ${name}\n`;
}

/** Every fixed chain name: the rest of the table is per-service, load-balancing or stale. */
export function fixedChainNames(opts: NftablesOptions): Set<string> {
  return new Set(fixedChains(opts, familySyntax(opts.family)).map((c) => c.name));
}

/**
 * The fixed part of a full sync: the table, its base and helper chains rewritten, and the managed sets
 * declared and emptied (the caller refills them). Sets are declared before the chains whose rules name them.
 */
export function skeleton(opts: NftablesOptions): string {
  const f = familySyntax(opts.family);
  const q = f.qualified;
  let out = `add table ${q} { comment "rules for kube-proxy" ; }\n`;
  const decls = setDeclarations(f);
  for (const name of MANAGED_SETS) out += `add ${setKind(name)} ${q} ${name} { ${decls[name]} }\nflush ${setKind(name)} ${q} ${name}\n`;
  const chains = fixedChains(opts, f);
  // Declared first (helpers before the chains jumping to them is not required within one transaction).
  for (const c of chains) {
    const spec = [c.base === undefined ? '' : `${c.base} ;`, c.comment === undefined ? '' : `comment "${c.comment}" ;`].filter((s) => s !== '').join(' ');
    out += chainHeader(q, c.name, spec);
  }
  for (const c of chains) for (const r of c.rules) out += `add rule ${q} ${c.name} ${r}\n`;
  return out;
}

/** The shared load-balancing chain's one rule (see names.ts loadBalancerChain). */
export function loadBalancerRule(opts: NftablesOptions, protocol: string, count: number): string {
  const f = familySyntax(opts.family);
  return `meta l4proto ${protocol} dnat to ${f.match} daddr . meta l4proto . ${protocol} dport . numgen random mod ${count} map @${SERVICE_ENDPOINTS}`;
}
