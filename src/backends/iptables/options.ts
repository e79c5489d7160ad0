import type { NodeTopology } from '../../model/categorize.js';
import type { IPFamily } from '../../model/ip.js';

/** Everything besides cluster state that changes the iptables rules. */
export interface IptablesOptions {
  readonly family: IPFamily;
  readonly node: NodeTopology;
  /** Pod CIDR of this family: traffic to a ClusterIP from outside it is masqueraded. */
  readonly clusterCidr: string | undefined;
  readonly masqueradeAll: boolean;
  /** The MARK bit that asks KUBE-POSTROUTING to masquerade, as iptables-save prints it. */
  readonly masqueradeMark: string;
  /** kube-proxy drops ctstate INVALID in KUBE-FORWARD unless nf_conntrack_tcp_be_liberal is set. */
  readonly dropInvalid: boolean;
  /** Above this many endpoints in total, per-endpoint comments are left out (kube-proxy's large-cluster mode). */
  readonly largeClusterEndpointsThreshold: number;
  /**
   * A full sync declaring more chains than this is split into several transactions (see payload.ts).
   * iptables-nft needs it; legacy iptables rewrites the whole table per COMMIT, so one transaction is
   * cheapest there (Infinity). Infinity is also kube-proxy's shape: one COMMIT, whatever the size.
   */
  readonly maxChainsPerTransaction: number;
  /**
   * `kube-proxy`: kube-proxy's chains verbatim (one KUBE-SEP chain per endpoint). `flat`: Services without
   * session affinity DNAT straight from their KUBE-SVC/KUBE-SVL chain, and hairpin traffic is found through
   * the KUBE-LOOP-BACK ipset instead of a rule per endpoint; about a third of the rules nf_tables re-validates
   * on every change. See the README's "Rule layouts".
   */
  readonly layout: IptablesLayout;
}

export const IPTABLES_LAYOUTS = ['kube-proxy', 'flat'] as const;
export type IptablesLayout = (typeof IPTABLES_LAYOUTS)[number];

export const DEFAULT_MASQUERADE_MARK = '0x4000';
export const LARGE_CLUSTER_ENDPOINTS_THRESHOLD = 1000;
/**
 * iptables-nft-restore spends time quadratic in the number of chains one transaction declares: 110,000
 * chains (10,000 Services x 10 endpoints) take over 10 minutes in one COMMIT and 2.3 s in COMMITs of 1,000.
 */
export const MAX_CHAINS_PER_TRANSACTION = 2000;

export function defaultIptablesOptions(overrides: Partial<IptablesOptions> = {}): IptablesOptions {
  return {
    family: 'IPv4',
    node: { name: '', zone: undefined },
    clusterCidr: undefined,
    masqueradeAll: false,
    masqueradeMark: DEFAULT_MASQUERADE_MARK,
    dropInvalid: true,
    largeClusterEndpointsThreshold: LARGE_CLUSTER_ENDPOINTS_THRESHOLD,
    maxChainsPerTransaction: MAX_CHAINS_PER_TRANSACTION,
    layout: 'kube-proxy',
    ...overrides,
  };
}
