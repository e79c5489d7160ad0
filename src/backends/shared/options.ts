import type { IPFamily } from '../../model/ip.js';

/** What every backend's rules depend on besides the cluster state. */
export interface CommonOptions {
  readonly family: IPFamily;
  /** Pod CIDR of this family: traffic to a ClusterIP from outside it is masqueraded. */
  readonly clusterCidr: string | undefined;
  readonly masqueradeAll: boolean;
  /** The MARK bit that asks for masquerade, as iptables-save prints it (nftables mode uses the same bit). */
  readonly masqueradeMark: string;
}

/** The fixed iptables rules of iptables and IPVS modes also depend on this. */
export interface IptablesRulesOptions extends CommonOptions {
  /** kube-proxy drops ctstate INVALID in KUBE-FORWARD unless nf_conntrack_tcp_be_liberal is set. */
  readonly dropInvalid: boolean;
}

export const DEFAULT_MASQUERADE_MARK = '0x4000';

export function defaultIptablesRulesOptions(overrides: Partial<IptablesRulesOptions> = {}): IptablesRulesOptions {
  return {
    family: 'IPv4',
    clusterCidr: undefined,
    masqueradeAll: false,
    masqueradeMark: DEFAULT_MASQUERADE_MARK,
    dropInvalid: true,
    ...overrides,
  };
}
