import type { NodeTopology } from '../../model/categorize.js';
import type { IPFamily } from '../../model/ip.js';
import { DEFAULT_MASQUERADE_MARK } from '../iptables/options.js';

/** Everything besides cluster state that changes what IPVS mode programs. */
export interface IpvsOptions {
  readonly family: IPFamily;
  readonly node: NodeTopology;
  /** Pod CIDR of this family: traffic to a ClusterIP from outside it is masqueraded. */
  readonly clusterCidr: string | undefined;
  readonly masqueradeAll: boolean;
  readonly masqueradeMark: string;
  /** As the iptables backend: kube-proxy drops ctstate INVALID in KUBE-FORWARD unless conntrack is liberal. */
  readonly dropInvalid: boolean;
  /** The IPVS scheduler of every virtual server (`--ipvs-scheduler`), kube-proxy's default rr. */
  readonly scheduler: string;
}

export const DEFAULT_IPVS_SCHEDULER = 'rr';

/** The schedulers ipvsadm 1.31 documents; each is a kernel module ip_vs_<name>. */
export const IPVS_SCHEDULERS = ['rr', 'wrr', 'lc', 'wlc', 'lblc', 'lblcr', 'dh', 'sh', 'sed', 'nq', 'fo', 'ovf', 'mh'] as const;

export function defaultIpvsOptions(overrides: Partial<IpvsOptions> = {}): IpvsOptions {
  return {
    family: 'IPv4',
    node: { name: '', zone: undefined },
    clusterCidr: undefined,
    masqueradeAll: false,
    masqueradeMark: DEFAULT_MASQUERADE_MARK,
    dropInvalid: true,
    scheduler: DEFAULT_IPVS_SCHEDULER,
    ...overrides,
  };
}
