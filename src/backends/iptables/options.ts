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
}

export const DEFAULT_MASQUERADE_MARK = '0x4000';
export const LARGE_CLUSTER_ENDPOINTS_THRESHOLD = 1000;

export function defaultIptablesOptions(overrides: Partial<IptablesOptions> = {}): IptablesOptions {
  return {
    family: 'IPv4',
    node: { name: '', zone: undefined },
    clusterCidr: undefined,
    masqueradeAll: false,
    masqueradeMark: DEFAULT_MASQUERADE_MARK,
    dropInvalid: true,
    largeClusterEndpointsThreshold: LARGE_CLUSTER_ENDPOINTS_THRESHOLD,
    ...overrides,
  };
}
