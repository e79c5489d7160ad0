// kube-proxy's iptables vocabulary that both modes writing iptables rules (iptables, IPVS) share: the fixed
// chains every sync owns outright, their rules, the jumps that hook them into the built-in chains, and the
// per-service chain names that are ours.
import type { LiveRules } from '../../kernel/syntax/iptables-save.js';

export const KUBE_SERVICES = 'KUBE-SERVICES';
export const KUBE_MARK_MASQ = 'KUBE-MARK-MASQ';
export const KUBE_POSTROUTING = 'KUBE-POSTROUTING';
export const KUBE_NODEPORTS = 'KUBE-NODEPORTS';
export const KUBE_EXTERNAL_SERVICES = 'KUBE-EXTERNAL-SERVICES';
export const KUBE_FORWARD = 'KUBE-FORWARD';
export const KUBE_PROXY_FIREWALL = 'KUBE-PROXY-FIREWALL';
/** The flat layout's hash:ip,port,ip set of endpoint ip,proto:port,ip (IPVS mode's name and format). */
export const KUBE_LOOP_BACK = 'KUBE-LOOP-BACK';
/** The set a full sync fills before swapping it in, so the live set is never half-filled. */
export const KUBE_LOOP_BACK_NEXT = 'KUBE-LOOP-BACK-NEXT';
/** An empty chain in every table: when it disappears, someone flushed the tables and a full sync is due. */
export const KUBE_PROXY_CANARY = 'KUBE-PROXY-CANARY';

/** IPVS mode's filter chain that rejects new connections to a bound ClusterIP on a port no Service has. */
export const KUBE_IPVS_FILTER = 'KUBE-IPVS-FILTER';

export type Table = 'filter' | 'nat' | 'mangle';

/** Fixed chains declared (and so flushed and rewritten) by every full sync, in payload order. */
export const FIXED_CHAINS: Readonly<Record<Table, readonly string[]>> = {
  filter: [KUBE_NODEPORTS, KUBE_SERVICES, KUBE_EXTERNAL_SERVICES, KUBE_FORWARD, KUBE_PROXY_FIREWALL, KUBE_PROXY_CANARY],
  nat: [KUBE_NODEPORTS, KUBE_SERVICES, KUBE_MARK_MASQ, KUBE_POSTROUTING, KUBE_PROXY_CANARY],
  mangle: [KUBE_PROXY_CANARY],
};

/**
 * The rules of the fixed chains, in kube-proxy's order. `hairpinSet`: the iptables backend's flat layout finds
 * hairpin traffic through the KUBE-LOOP-BACK set instead of a rule per endpoint.
 */
export function fixedRules(table: Table, opts: { readonly masqueradeMark: string; readonly dropInvalid: boolean; readonly hairpinSet: boolean }): string[] {
  const mark = opts.masqueradeMark;
  switch (table) {
    case 'filter':
      return [
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
                `-m set --match-set ${KUBE_LOOP_BACK} dst,dst,src -j ${KUBE_MARK_MASQ}`,
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

/** The last rule of nat KUBE-SERVICES; per-service rules are always inserted before it. */
export const NODEPORTS_TAIL_RULE =
  `-A ${KUBE_SERVICES} -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" ` +
  `-m addrtype --dst-type LOCAL -j ${KUBE_NODEPORTS}`;

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
