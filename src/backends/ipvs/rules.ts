// The iptables rules IPVS mode still needs. Their number does not grow with Services (set membership does),
// except for the REJECT/DROP rules of ports nothing serves and the out filter's rules of LB IPs with source
// ranges, so the whole ruleset is rewritten when it changes.
import { appendRule, declareChain, deleteChain, transaction } from '../../kernel/syntax/iptables-restore.js';
import type { LiveRules } from '../../kernel/syntax/iptables-save.js';
import {
  BUILTIN_JUMPS,
  type BuiltinJump,
  FIXED_CHAINS,
  IPVS_CHAINS,
  KUBE_IPVS_FILTER,
  KUBE_IPVS_OUT_FILTER,
  KUBE_LOAD_BALANCER_CHAIN,
  KUBE_LOOP_BACK,
  KUBE_MARK_MASQ,
  KUBE_POSTROUTING,
  KUBE_PROXY_FIREWALL,
  KUBE_NODE_PORT,
  KUBE_SERVICES,
  KUBE_SOURCE_RANGES_FIREWALL,
  type Table,
  fixedRules,
  isPerServiceChain,
  jump,
  missingJumps,
} from '../shared/iptables-fixed.js';
import type { IpvsOptions } from './options.js';
import {
  KUBE_CLUSTER_IP,
  KUBE_EXTERNAL_IP,
  KUBE_EXTERNAL_IP_LOCAL,
  KUBE_HEALTH_CHECK_NODE_PORT,
  KUBE_IPVS_IPS,
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
  setComment,
} from './sets.js';

export { KUBE_CLUSTER_IP, KUBE_IPVS_IPS };

/**
 * kube-proxy's jumps plus IPVS mode's own: in INPUT to KUBE-SERVICES (a ClusterIP is a local address here, so a
 * pod's packet to it is delivered, not forwarded, and the REJECT/DROP rules must be reached from there), to the
 * IPVS filter and to the health-check ports' chain; in OUTPUT to the out filter.
 */
export const IPVS_BUILTIN_JUMPS: readonly BuiltinJump[] = [
  ...BUILTIN_JUMPS,
  jump('filter', 'INPUT', KUBE_SERVICES, 'kubernetes service portals', true),
  jump('filter', 'INPUT', KUBE_IPVS_FILTER, 'kubernetes ipvs access filter', false),
  jump('filter', 'INPUT', KUBE_NODE_PORT, 'kubernetes health check rules', false),
  jump('filter', 'OUTPUT', KUBE_IPVS_OUT_FILTER, 'kubernetes ipvs access filter', false),
];

/** `-m comment --comment "<the set's comment>" -m set --match-set SET FLAGS`, as upstream writes set rules. */
function setMatch(set: string, flags: string): string {
  return `-m comment --comment "${setComment(set)}" -m set --match-set ${set} ${flags}`;
}

/**
 * The ruleset for these sets and per-service rules (`CHAIN spec`), without what depends on the node's current
 * tables (see `ipvsRulesPayload`); a sync compares it with the last one applied and skips the restore when equal.
 * As upstream, a rule matching a set is written only while the set has members (`nonEmpty`), but for
 * KUBE-CLUSTER-IP's and KUBE-LOOP-BACK's.
 */
export function ipvsRulesBody(opts: IpvsOptions, serviceRules: Iterable<string>, nonEmpty: ReadonlySet<string>): IpvsRulesBody {
  const has = (set: string): boolean => nonEmpty.has(set);
  const iptablesLike = { masqueradeMark: opts.masqueradeMark, dropInvalid: opts.dropInvalid, hairpinSet: false, localhostNodePorts: false };
  const filter = [
    ...fixedRules('filter', iptablesLike).map((r) => `${r}\n`),
    ...[...serviceRules].map((r) => `-A ${r}\n`),
  ];
  if (has(KUBE_LOAD_BALANCER_FW)) {
    filter.push(appendRule(KUBE_PROXY_FIREWALL, `${setMatch(KUBE_LOAD_BALANCER_FW, 'dst,dst')} -j ${KUBE_SOURCE_RANGES_FIREWALL}`));
    for (const set of [KUBE_LOAD_BALANCER_SOURCE_CIDR, KUBE_LOAD_BALANCER_SOURCE_IP]) {
      if (has(set)) filter.push(appendRule(KUBE_SOURCE_RANGES_FIREWALL, `${setMatch(set, 'dst,dst,src')} -j RETURN`));
    }
    filter.push(appendRule(KUBE_SOURCE_RANGES_FIREWALL, '-j DROP'));
  }
  if (has(KUBE_HEALTH_CHECK_NODE_PORT)) filter.push(appendRule(KUBE_NODE_PORT, `${setMatch(KUBE_HEALTH_CHECK_NODE_PORT, 'dst')} -j ACCEPT`));
  for (const [set, flags] of [
    [KUBE_LOAD_BALANCER, 'dst,dst'],
    [KUBE_CLUSTER_IP, 'dst,dst'],
    [KUBE_EXTERNAL_IP, 'dst,dst'],
    [KUBE_EXTERNAL_IP_LOCAL, 'dst,dst'],
    [KUBE_HEALTH_CHECK_NODE_PORT, 'dst'],
  ] as const) {
    if (set === KUBE_CLUSTER_IP || has(set)) filter.push(appendRule(KUBE_IPVS_FILTER, `-m set --match-set ${set} ${flags} -j RETURN`));
  }
  filter.push(appendRule(KUBE_IPVS_FILTER, `-m conntrack --ctstate NEW -m set --match-set ${KUBE_IPVS_IPS} dst -j REJECT`));

  const masq = `-A ${KUBE_SERVICES} ${setMatch(KUBE_CLUSTER_IP, '')}`.trimEnd();
  const nat = [
    `-A ${KUBE_POSTROUTING} ${setMatch(KUBE_LOOP_BACK, 'dst,dst,src')} -j MASQUERADE\n`,
    ...fixedRules('nat', iptablesLike).map((r) => `${r}\n`),
  ];
  if (has(KUBE_LOAD_BALANCER)) nat.push(appendRule(KUBE_SERVICES, `${setMatch(KUBE_LOAD_BALANCER, 'dst,dst')} -j ${KUBE_LOAD_BALANCER_CHAIN}`));
  if (has(KUBE_LOAD_BALANCER_LOCAL)) nat.push(appendRule(KUBE_LOAD_BALANCER_CHAIN, `${setMatch(KUBE_LOAD_BALANCER_LOCAL, 'dst,dst')} -j RETURN`));
  // A port bitmap has no protocol: the rule says it. SCTP's sets hold node IP and port.
  const nodePortSets = [
    ['tcp', KUBE_NODE_PORT_LOCAL_TCP, KUBE_NODE_PORT_TCP, 'dst'],
    ['udp', KUBE_NODE_PORT_LOCAL_UDP, KUBE_NODE_PORT_UDP, 'dst'],
    ['sctp', KUBE_NODE_PORT_LOCAL_SCTP, KUBE_NODE_PORT_SCTP, 'dst,dst'],
  ] as const;
  for (const [proto, local, all, flags] of nodePortSets) {
    if (has(local)) nat.push(appendRule(KUBE_NODE_PORT, `-p ${proto} ${setMatch(local, flags)} -j RETURN`));
    if (has(all)) nat.push(appendRule(KUBE_NODE_PORT, `-p ${proto} ${setMatch(all, flags)} -j ${KUBE_MARK_MASQ}`));
  }
  // As upstream: off-cluster clients are masqueraded given a pod CIDR; without one, the node's own
  // connections, whose source is the ClusterIP itself (it is bound locally), are.
  nat.push(
    opts.masqueradeAll
      ? `${masq} dst,dst -j ${KUBE_MARK_MASQ}\n`
      : opts.clusterCidr !== undefined
        ? `${masq} dst,dst ! -s ${opts.clusterCidr} -j ${KUBE_MARK_MASQ}\n`
        : `${masq} src,dst -j ${KUBE_MARK_MASQ}\n`,
  );
  for (const set of [KUBE_EXTERNAL_IP, KUBE_EXTERNAL_IP_LOCAL]) {
    if (!has(set)) continue;
    const m = setMatch(set, 'dst,dst');
    // eTP Cluster: every client masqueraded; eTP Local: none, so endpoints see the client's address.
    if (set === KUBE_EXTERNAL_IP) nat.push(appendRule(KUBE_SERVICES, `${m} -j ${KUBE_MARK_MASQ}`));
    nat.push(
      appendRule(KUBE_SERVICES, `${m} -m physdev ! --physdev-is-in -m addrtype ! --src-type LOCAL -j ACCEPT`),
      appendRule(KUBE_SERVICES, `${m} -m addrtype --dst-type LOCAL -j ACCEPT`),
    );
  }
  if (nodePortSets.some(([, local, all]) => has(local) || has(all))) {
    nat.push(appendRule(KUBE_SERVICES, `-m addrtype --dst-type LOCAL -j ${KUBE_NODE_PORT}`));
  }
  if (has(KUBE_LOAD_BALANCER)) nat.push(appendRule(KUBE_LOAD_BALANCER_CHAIN, `-j ${KUBE_MARK_MASQ}`));
  // Service traffic is IPVS's: stop here, so no later nat rule (another agent's `--dst-type LOCAL` DNAT, now
  // that ClusterIPs are local addresses) takes it, as upstream's.
  nat.push(appendRule(KUBE_SERVICES, `-m set --match-set ${KUBE_CLUSTER_IP} dst,dst -j ACCEPT`));
  if (has(KUBE_LOAD_BALANCER)) nat.push(appendRule(KUBE_SERVICES, `-m set --match-set ${KUBE_LOAD_BALANCER} dst,dst -j ACCEPT`));
  return { filter: filter.join(''), nat: nat.join('') };
}

/** Our chains' rules per table, as restore lines; equal bodies mean an unchanged ruleset. */
export interface IpvsRulesBody {
  readonly filter: string;
  readonly nat: string;
}

export function sameRulesBody(a: IpvsRulesBody | undefined, b: IpvsRulesBody): boolean {
  return a !== undefined && a.filter === b.filter && a.nat === b.nat;
}

/**
 * The iptables-restore input (`--noflush`): our chains declared and refilled, and, when the node's tables
 * were read (`live`, on a full sync), the missing jumps from built-in chains and the iptables backend's
 * per-service chains deleted (left over from a switch of backend).
 */
export function ipvsRulesPayload(body: IpvsRulesBody, live: LiveRules | undefined): string {
  const jumps = (table: Table): string[] => (live === undefined ? [] : missingJumps(table, live, IPVS_BUILTIN_JUMPS));
  const stale = live === undefined ? [] : [...(live.chains.get('nat') ?? [])].filter(isPerServiceChain).sort();
  const chains = (table: Table): string[] => [...FIXED_CHAINS[table], ...IPVS_CHAINS[table]].map(declareChain);
  return [
    ...transaction('filter', chains('filter'), [body.filter], jumps('filter')),
    ...transaction('nat', chains('nat'), stale.map(declareChain), [body.nat], stale.map(deleteChain), jumps('nat')),
    ...transaction('mangle', chains('mangle'), jumps('mangle')),
  ].join('');
}
