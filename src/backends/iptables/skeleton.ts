import type { IptablesOptions } from './options.js';

/** The chains every sync owns outright, and the jumps that hook them into the built-in chains. */
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

/** The rules of the fixed chains, in kube-proxy's order. */
export function fixedRules(table: Table, opts: Pick<IptablesOptions, 'masqueradeMark' | 'dropInvalid' | 'layout'>): string[] {
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
        ...(opts.layout === 'flat'
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
