import type { IptablesMode } from '../../kernel/iptables-mode.js';
import { type FixedRulesOptions, loopbackSetNames, nodePortsTailRules } from '../shared/iptables-fixed.js';
import { type IptablesRulesOptions, defaultIptablesRulesOptions } from '../shared/options.js';

/** Everything besides cluster state that changes the iptables rules. */
export interface IptablesOptions extends IptablesRulesOptions {
  /** Above this many endpoints in total, per-endpoint comments are left out (kube-proxy's large-cluster mode). */
  readonly largeClusterEndpointsThreshold: number;
  /**
   * A full sync declaring more chains than this is split into several transactions (see restore-plan.ts).
   * iptables-nft needs it; legacy iptables rewrites the whole table per COMMIT, so one transaction is
   * cheapest there (Infinity). Infinity is also kube-proxy's shape: one COMMIT, whatever the size.
   */
  readonly maxChainsPerTransaction: number;
  /**
   * `kube-proxy`: kube-proxy's chains verbatim (one KUBE-SEP chain per endpoint). `flat`: Services without
   * session affinity DNAT straight from their KUBE-SVC/KUBE-SVL chain, and hairpin traffic is found through
   * the KUBE-LOOP-BACK ipset instead of a rule per endpoint; about a third of the rules nf_tables re-validates
   * on every change. See docs/backends/iptables.md, "Rule layouts".
   */
  readonly layout: IptablesLayout;
  /**
   * Where NodePorts answer: `all` local addresses (`-m addrtype --dst-type LOCAL`, kube-proxy's default), or
   * these node IPs (the local addresses inside `--nodeport-addresses`).
   */
  readonly nodePortAddresses: 'all' | readonly string[];
  /**
   * NodePorts on 127.0.0.0/8 too (IPv4; kube-proxy's --iptables-localhost-nodeports, on by default): needs
   * route_localnet, guarded by the KUBE-FIREWALL rule. Off when the NodePort addresses exclude loopback.
   */
  readonly localhostNodePorts: boolean;
}

export const IPTABLES_LAYOUTS = ['kube-proxy', 'flat'] as const;
export type IptablesLayout = (typeof IPTABLES_LAYOUTS)[number];

export const LARGE_CLUSTER_ENDPOINTS_THRESHOLD = 1000;
/**
 * iptables-nft-restore spends time quadratic in the number of chains one transaction declares: 110,000
 * chains (10,000 Services x 10 endpoints) take over 10 minutes in one COMMIT and 2.3 s in COMMITs of 1,000.
 */
export const MAX_CHAINS_PER_TRANSACTION = 2000;

/**
 * How many chains one full-sync transaction may declare in this mode. iptables-nft-restore is quadratic in
 * that number (see MAX_CHAINS_PER_TRANSACTION); legacy iptables-restore rewrites the whole table blob per
 * COMMIT, so there one transaction is cheapest (10,000 Services x 10 endpoints: 5.4 s in one, 40 s in 55).
 */
export function maxChainsPerTransaction(mode: IptablesMode): number {
  return mode === 'legacy' ? Infinity : MAX_CHAINS_PER_TRANSACTION;
}

export function defaultIptablesOptions(overrides: Partial<IptablesOptions> = {}): IptablesOptions {
  return {
    ...defaultIptablesRulesOptions(),
    largeClusterEndpointsThreshold: LARGE_CLUSTER_ENDPOINTS_THRESHOLD,
    maxChainsPerTransaction: MAX_CHAINS_PER_TRANSACTION,
    layout: 'kube-proxy',
    nodePortAddresses: 'all',
    localhostNodePorts: true,
    ...overrides,
  };
}

/** What the shared fixed rules need to know of this backend's options. */
export function fixedRulesOptions(opts: IptablesOptions): FixedRulesOptions {
  return {
    masqueradeMark: opts.masqueradeMark,
    dropInvalid: opts.dropInvalid,
    hairpinSet: opts.layout === 'flat',
    loopbackSet: loopbackSetNames(opts.family).live,
    localhostNodePorts: localhostNodePortsOn(opts),
  };
}

/** As kube-proxy: IPv4 only, and only when the NodePort addresses include loopback. */
export function localhostNodePortsOn(opts: IptablesOptions): boolean {
  if (!opts.localhostNodePorts || opts.family !== 'IPv4') return false;
  return opts.nodePortAddresses === 'all' || opts.nodePortAddresses.some((ip) => ip.startsWith('127.'));
}

/** The last rules of nat KUBE-SERVICES, to KUBE-NODEPORTS, for these options. */
export function tailRules(opts: IptablesOptions): string[] {
  return nodePortsTailRules({ nodePortAddresses: opts.nodePortAddresses, localhostNodePorts: localhostNodePortsOn(opts), family: opts.family });
}
