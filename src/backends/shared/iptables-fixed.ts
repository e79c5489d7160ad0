// kube-proxy's iptables vocabulary that both modes writing iptables rules (iptables, IPVS) share: the fixed
// chains every sync owns outright, their rules, the jumps that hook them into the built-in chains, and the
// per-service chain names that are ours.
import type { LiveRules } from '../../kernel/syntax/iptables-save.js';
import type { IPFamily } from '../../model/ip.js';

export const KUBE_SERVICES = 'KUBE-SERVICES';
export const KUBE_MARK_MASQ = 'KUBE-MARK-MASQ';
export const KUBE_POSTROUTING = 'KUBE-POSTROUTING';
export const KUBE_NODEPORTS = 'KUBE-NODEPORTS';
export const KUBE_EXTERNAL_SERVICES = 'KUBE-EXTERNAL-SERVICES';
export const KUBE_FORWARD = 'KUBE-FORWARD';
export const KUBE_PROXY_FIREWALL = 'KUBE-PROXY-FIREWALL';
/** kubelet's chain too: kube-proxy writes its localnet rule there when localhost NodePorts are on. */
export const KUBE_FIREWALL = 'KUBE-FIREWALL';
/** The flat layout's hash:ip,port,ip set of endpoint ip,proto:port,ip (IPVS mode's name and format). */
export const KUBE_LOOP_BACK = 'KUBE-LOOP-BACK';
/** The set a full sync fills before swapping it in, so the live set is never half-filled. */
export const KUBE_LOOP_BACK_NEXT = 'KUBE-LOOP-BACK-NEXT';
/**
 * IPv6's loop-back sets. ipset names are global, not per family, so a dual-stack node needs a second pair; the
 * name is upstream IPVS mode's IPv6 one (`KUBE-` becomes `KUBE-6-`).
 */
export const KUBE_6_LOOP_BACK = 'KUBE-6-LOOP-BACK';
export const KUBE_6_LOOP_BACK_NEXT = 'KUBE-6-LOOP-BACK-NEXT';

/** The flat layout's loop-back set of a family, and the set a full sync fills before swapping it in. */
export function loopbackSetNames(family: IPFamily): { readonly live: string; readonly next: string } {
  return family === 'IPv4' ? { live: KUBE_LOOP_BACK, next: KUBE_LOOP_BACK_NEXT } : { live: KUBE_6_LOOP_BACK, next: KUBE_6_LOOP_BACK_NEXT };
}

/** An empty chain in every table: when it disappears, someone flushed the tables and a full sync is due. */
export const KUBE_PROXY_CANARY = 'KUBE-PROXY-CANARY';

/** IPVS mode's filter chain that rejects new connections to a bound ClusterIP on a port no Service has. */
export const KUBE_IPVS_FILTER = 'KUBE-IPVS-FILTER';
/** IPVS mode's filter OUTPUT chain: drops the node's own connections to LB IPs its source ranges exclude. */
export const KUBE_IPVS_OUT_FILTER = 'KUBE-IPVS-OUT-FILTER';
/** IPVS mode, nat: NodePort masquerade by set; filter: the health-check node ports' ACCEPT (upstream's name in both). */
export const KUBE_NODE_PORT = 'KUBE-NODE-PORT';
/** IPVS mode, nat: LB IP masquerade unless externalTrafficPolicy is Local. */
export const KUBE_LOAD_BALANCER_CHAIN = 'KUBE-LOAD-BALANCER';
/** IPVS mode, filter: sources allowed to LB IPs with loadBalancerSourceRanges; the rest is dropped. */
export const KUBE_SOURCE_RANGES_FIREWALL = 'KUBE-SOURCE-RANGES-FIREWALL';

export type Table = 'filter' | 'nat' | 'mangle';

/** Fixed chains declared (and so flushed and rewritten) by every full sync, in payload order. */
export const FIXED_CHAINS: Readonly<Record<Table, readonly string[]>> = {
  filter: [KUBE_NODEPORTS, KUBE_SERVICES, KUBE_EXTERNAL_SERVICES, KUBE_FORWARD, KUBE_PROXY_FIREWALL, KUBE_PROXY_CANARY],
  nat: [KUBE_NODEPORTS, KUBE_SERVICES, KUBE_MARK_MASQ, KUBE_POSTROUTING, KUBE_PROXY_CANARY],
  mangle: [KUBE_PROXY_CANARY],
};

/** IPVS mode's chains beyond FIXED_CHAINS, per table, in declaration order (ours in cleanup whichever backend ran). */
export const IPVS_CHAINS: Readonly<Record<Table, readonly string[]>> = {
  filter: [KUBE_IPVS_FILTER, KUBE_NODE_PORT, KUBE_SOURCE_RANGES_FIREWALL, KUBE_IPVS_OUT_FILTER],
  nat: [KUBE_NODE_PORT, KUBE_LOAD_BALANCER_CHAIN],
  mangle: [],
};

/**
 * The rules of the fixed chains, in kube-proxy's order. `hairpinSet`: the iptables backend's flat layout finds
 * hairpin traffic through the KUBE-LOOP-BACK set instead of a rule per endpoint.
 */
export interface FixedRulesOptions {
  readonly masqueradeMark: string;
  readonly dropInvalid: boolean;
  readonly hairpinSet: boolean;
  /** The set the hairpin rule matches: KUBE-LOOP-BACK unless given (KUBE-6-LOOP-BACK for IPv6). */
  readonly loopbackSet?: string;
  /** IPv4 NodePorts on 127.0.0.0/8 (iptables mode only): KUBE-FIREWALL guards route_localnet. */
  readonly localhostNodePorts: boolean;
}

/** The fixed chains of `table` a sync declares: FIXED_CHAINS, plus KUBE-FIREWALL where localhost NodePorts need it. */
export function fixedChains(table: Table, opts: Pick<FixedRulesOptions, 'localhostNodePorts'>): readonly string[] {
  if (table !== 'filter' || !opts.localhostNodePorts) return FIXED_CHAINS[table];
  const chains = [...FIXED_CHAINS.filter];
  chains.splice(chains.indexOf(KUBE_EXTERNAL_SERVICES) + 1, 0, KUBE_FIREWALL);
  return chains;
}

export function fixedRules(table: Table, opts: FixedRulesOptions): string[] {
  const mark = opts.masqueradeMark;
  switch (table) {
    case 'filter':
      return [
        // route_localnet lets packets to 127.0.0.0/8 be routed; only DNATed ones (localhost NodePorts) may be.
        ...(opts.localhostNodePorts
          ? [
              `-A ${KUBE_FIREWALL} -m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 ` +
                '-m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP',
            ]
          : []),
        ...(opts.dropInvalid ? [`-A ${KUBE_FORWARD} -m conntrack --ctstate INVALID -j DROP`] : []),
        `-A ${KUBE_FORWARD} -m comment --comment "kubernetes forwarding rules" -m mark --mark ${mark}/${mark} -j ACCEPT`,
        `-A ${KUBE_FORWARD} -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`,
      ];
    case 'nat':
      return [
        // Flat layout: hairpin traffic (a pod DNATed to itself) has no endpoint chain to mark it; the set does.
        ...(opts.hairpinSet
          ? [
              `-A ${KUBE_POSTROUTING} -m comment --comment "kubernetes service hairpin traffic" -m conntrack --ctstate DNAT ` +
                `-m set --match-set ${opts.loopbackSet ?? KUBE_LOOP_BACK} dst,dst,src -j ${KUBE_MARK_MASQ}`,
            ]
          : []),
        `-A ${KUBE_POSTROUTING} -m mark ! --mark ${mark}/${mark} -j RETURN`,
        `-A ${KUBE_POSTROUTING} -j MARK --xor-mark ${mark}`,
        `-A ${KUBE_POSTROUTING} -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully`,
        `-A ${KUBE_MARK_MASQ} -j MARK --or-mark ${mark}`,
      ];
    case 'mangle':
      return [];
  }
}

const NODEPORTS_TAIL_COMMENT = '-m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain"';

/**
 * The last rules of nat KUBE-SERVICES (per-service rules are always inserted before them): to KUBE-NODEPORTS
 * for any local address (`all`), or for each listed node IP. Loopback addresses only with localhost NodePorts.
 */
export function nodePortsTailRules(opts: { readonly nodePortAddresses: 'all' | readonly string[]; readonly localhostNodePorts: boolean; readonly family: IPFamily }): string[] {
  if (opts.nodePortAddresses === 'all') {
    // IPv6 never has localhost NodePorts, so ::1 is always excluded (upstream writes `! -d ::1/128` whatever the flag).
    const notLocalhost = opts.family === 'IPv6' ? ' ! -d ::1/128' : opts.localhostNodePorts ? '' : ' ! -d 127.0.0.0/8';
    return [`-A ${KUBE_SERVICES} ${NODEPORTS_TAIL_COMMENT} -m addrtype --dst-type LOCAL${notLocalhost} -j ${KUBE_NODEPORTS}`];
  }
  // Only this family's addresses (upstream's NodePortAddresses are per family); loopback only for IPv4 localhost NodePorts.
  const v6 = opts.family === 'IPv6';
  return opts.nodePortAddresses
    .filter((ip) => ip.includes(':') === v6)
    .filter((ip) => !isLoopback(ip) || (opts.localhostNodePorts && !v6))
    .map((ip) => `-A ${KUBE_SERVICES} ${NODEPORTS_TAIL_COMMENT} -d ${ip} -j ${KUBE_NODEPORTS}`);
}

export function isLoopback(ip: string): boolean {
  return ip.startsWith('127.') || ip === '::1';
}

/** A jump from a built-in chain, written exactly as `iptables-save` prints it so presence can be checked by text. */
export interface BuiltinJump {
  readonly table: Table;
  readonly chain: string;
  readonly rule: string;
}

export function jump(table: Table, chain: string, target: string, comment: string | undefined, newOnly: boolean): BuiltinJump {
  const ct = newOnly ? ' -m conntrack --ctstate NEW' : '';
  const c = comment === undefined ? '' : ` -m comment --comment "${comment}"`;
  return { table, chain, rule: `-A ${chain}${ct}${c} -j ${target}` };
}

/**
 * kube-proxy's jumps from built-in chains. Each is prepended when missing, never rewritten, so other
 * agents' rules in these chains keep their place; prepending in list order leaves them in reverse order.
 */
export const BUILTIN_JUMPS: readonly BuiltinJump[] = [
  jump('filter', 'INPUT', KUBE_EXTERNAL_SERVICES, 'kubernetes externally-visible service portals', true),
  jump('filter', 'FORWARD', KUBE_EXTERNAL_SERVICES, 'kubernetes externally-visible service portals', true),
  jump('filter', 'INPUT', KUBE_NODEPORTS, 'kubernetes health check service ports', false),
  jump('filter', 'FORWARD', KUBE_SERVICES, 'kubernetes service portals', true),
  jump('filter', 'OUTPUT', KUBE_SERVICES, 'kubernetes service portals', true),
  jump('filter', 'FORWARD', KUBE_FORWARD, 'kubernetes forwarding rules', false),
  jump('filter', 'INPUT', KUBE_PROXY_FIREWALL, 'kubernetes load balancer firewall', true),
  jump('filter', 'OUTPUT', KUBE_PROXY_FIREWALL, 'kubernetes load balancer firewall', true),
  jump('filter', 'FORWARD', KUBE_PROXY_FIREWALL, 'kubernetes load balancer firewall', true),
  jump('nat', 'OUTPUT', KUBE_SERVICES, 'kubernetes service portals', false),
  jump('nat', 'PREROUTING', KUBE_SERVICES, 'kubernetes service portals', false),
  jump('nat', 'POSTROUTING', KUBE_POSTROUTING, 'kubernetes postrouting rules', false),
];

/** kubelet's jumps to KUBE-FIREWALL, which kube-proxy ensures too when it writes the chain. */
export const FIREWALL_JUMPS: readonly BuiltinJump[] = [
  jump('filter', 'INPUT', KUBE_FIREWALL, undefined, false),
  jump('filter', 'OUTPUT', KUBE_FIREWALL, undefined, false),
];

/** `-I` lines for the jumps of `table` that `live` lacks, in kube-proxy's prepend order (IPVS mode passes its own list). */
export function missingJumps(table: Table, live: LiveRules, jumps: readonly BuiltinJump[] = BUILTIN_JUMPS): string[] {
  const present = live.rules.get(table);
  return jumps.filter((j) => j.table === table && !present?.has(j.rule)).map(
    (j) => `-I ${j.chain} 1 ${j.rule.slice(`-A ${j.chain} `.length)}\n`,
  );
}


/** Prefixes of the chains whose lifetime follows a service port; only these are ever deleted as stale. */
export const PER_SERVICE_CHAIN_PREFIXES = ['KUBE-SVC-', 'KUBE-SVL-', 'KUBE-EXT-', 'KUBE-FW-', 'KUBE-SEP-'] as const;

export function isPerServiceChain(name: string): boolean {
  return PER_SERVICE_CHAIN_PREFIXES.some((prefix) => name.startsWith(prefix));
}

/**
 * A rule a Service puts in a chain it shares with others (KUBE-SERVICES, KUBE-NODEPORTS, the firewall chains):
 * `CHAIN spec`, the restore line without its `-A `, so one list can hold rules of several chains.
 */
export function sharedRule(chain: string, spec: string): string {
  return `${chain} ${spec}`;
}

/** The chain and the spec of a sharedRule. */
export function splitSharedRule(rule: string): { chain: string; spec: string } {
  const space = rule.indexOf(' ');
  return { chain: rule.slice(0, space), spec: rule.slice(space + 1) };
}

/** kube-proxy's match of one service port: `-m tcp -p tcp -d VIP --dport PORT`. */
export function portMatch(proto: string, clusterIP: string, port: number): string {
  return `-m ${proto} -p ${proto} -d ${clusterIP} --dport ${port}`;
}

/**
 * The filter KUBE-SERVICES rule (without `-A KUBE-SERVICES `) for a service port nothing may serve: REJECT when
 * it has no endpoints at all, DROP when its traffic policy wants local endpoints and there are none. IPVS mode
 * rejects the same way.
 */
export function unservedPortRule(spn: string, match: string, hasAnyEndpoints: boolean, hasInternalEndpoints: boolean): string | undefined {
  if (!hasAnyEndpoints) return `-m comment --comment "${spn} has no endpoints" ${match} -j REJECT`;
  if (!hasInternalEndpoints) return `-m comment --comment "${spn} has no local endpoints" ${match} -j DROP`;
  return undefined;
}

/** Lines in restore text (each ends in a newline): rule counts for metrics. */
export function countLines(text: string): number {
  let n = 0;
  for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) n++;
  return n;
}
