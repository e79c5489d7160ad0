// The iptables rules IPVS mode still needs. Their number does not grow with Services (set membership does),
// except for the REJECT/DROP rules of ports nothing serves, so the whole ruleset is rewritten when it changes.
import { appendRule, declareChain, deleteChain, transaction } from '../../kernel/syntax/iptables-restore.js';
import type { LiveRules } from '../../kernel/syntax/iptables-save.js';
import {
  BUILTIN_JUMPS,
  type BuiltinJump,
  FIXED_CHAINS,
  KUBE_IPVS_FILTER,
  KUBE_LOOP_BACK,
  KUBE_MARK_MASQ,
  KUBE_POSTROUTING,
  KUBE_SERVICES,
  type Table,
  fixedRules,
  isPerServiceChain,
  jump,
  missingJumps,
} from '../shared/iptables-fixed.js';
import type { IpvsOptions } from './options.js';

/** hash:ip,port: every ClusterIP,proto:port. */
export const KUBE_CLUSTER_IP = 'KUBE-CLUSTER-IP';
/** hash:ip: every address bound to kube-ipvs0. */
export const KUBE_IPVS_IPS = 'KUBE-IPVS-IPS';

/**
 * kube-proxy's jumps plus IPVS mode's two in INPUT: a ClusterIP is a local address here, so a pod's packet
 * to it is delivered (INPUT), not forwarded, and the REJECT/DROP rules must be reached from there.
 */
export const IPVS_BUILTIN_JUMPS: readonly BuiltinJump[] = [
  ...BUILTIN_JUMPS,
  jump('filter', 'INPUT', KUBE_SERVICES, 'kubernetes service portals', true),
  jump('filter', 'INPUT', KUBE_IPVS_FILTER, 'kubernetes ipvs access filter', false),
];

/**
 * The ruleset for these REJECT/DROP rules, without what depends on the node's current tables (see
 * `ipvsRulesPayload`); a sync compares it with the last one applied and skips the restore when equal.
 */
export function ipvsRulesBody(opts: IpvsOptions, filterRules: Iterable<string>): IpvsRulesBody {
  const iptablesLike = { masqueradeMark: opts.masqueradeMark, dropInvalid: opts.dropInvalid, hairpinSet: false, localhostNodePorts: false };
  const filter = [
    ...fixedRules('filter', iptablesLike).map((r) => `${r}\n`),
    ...[...filterRules].map((r) => appendRule(KUBE_SERVICES, r)),
    appendRule(KUBE_IPVS_FILTER, `-m set --match-set ${KUBE_CLUSTER_IP} dst,dst -j RETURN`),
    appendRule(KUBE_IPVS_FILTER, `-m conntrack --ctstate NEW -m set --match-set ${KUBE_IPVS_IPS} dst -j REJECT`),
  ];
  const masq = `-A ${KUBE_SERVICES} -m comment --comment "Kubernetes service cluster ip + port for masquerade purpose" -m set --match-set ${KUBE_CLUSTER_IP}`;
  const nat = [
    `-A ${KUBE_POSTROUTING} -m comment --comment "Kubernetes endpoints dst ip:port, source ip for solving hairpin purpose" ` +
      `-m set --match-set ${KUBE_LOOP_BACK} dst,dst,src -j MASQUERADE\n`,
    ...fixedRules('nat', iptablesLike).map((r) => `${r}\n`),
    // As upstream: off-cluster clients are masqueraded given a pod CIDR; without one, the node's own
    // connections, whose source is the ClusterIP itself (it is bound locally), are.
    opts.masqueradeAll
      ? `${masq} dst,dst -j ${KUBE_MARK_MASQ}\n`
      : opts.clusterCidr !== undefined
        ? `${masq} dst,dst ! -s ${opts.clusterCidr} -j ${KUBE_MARK_MASQ}\n`
        : `${masq} src,dst -j ${KUBE_MARK_MASQ}\n`,
    // Service traffic is IPVS's: stop here, so no later nat rule (another agent's `--dst-type LOCAL` DNAT, now
    // that ClusterIPs are local addresses) takes it, as upstream's.
    appendRule(KUBE_SERVICES, `-m set --match-set ${KUBE_CLUSTER_IP} dst,dst -j ACCEPT`),
  ];
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
  return [
    ...transaction('filter', [...FIXED_CHAINS.filter, KUBE_IPVS_FILTER].map(declareChain), [body.filter], jumps('filter')),
    ...transaction('nat', FIXED_CHAINS.nat.map(declareChain), stale.map(declareChain), [body.nat], stale.map(deleteChain), jumps('nat')),
    ...transaction('mangle', FIXED_CHAINS.mangle.map(declareChain), jumps('mangle')),
  ].join('');
}
