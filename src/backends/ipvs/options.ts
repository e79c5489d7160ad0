import { type IptablesRulesOptions, defaultIptablesRulesOptions } from '../shared/options.js';

/**
 * Everything besides cluster state that changes what IPVS mode programs: what its few iptables rules and
 * endpoint selection read, the scheduler, and the addresses NodePorts answer on.
 */
export type IpvsOptions = IptablesRulesOptions & {
  /** The IPVS scheduler of every virtual server (`--ipvs-scheduler`), kube-proxy's default rr. */
  readonly scheduler: string;
  /**
   * Where NodePorts get virtual servers: `all` local addresses (kube-proxy's default, taken from `nodePortIPs`),
   * or these node IPs (the local addresses inside `--nodeport-addresses`). Loopback, IPv6 link-local and the
   * other family's addresses are always left out, as upstream's.
   */
  readonly nodePortAddresses: 'all' | readonly string[];
  /**
   * With `nodePortAddresses: 'all'`: the node's local addresses, except those on kube-ipvs0 (upstream's
   * GetAllLocalAddressesExcept), as the CLI reads them; undefined: the node's IPs from the cluster state.
   */
  readonly nodePortIPs: readonly string[] | undefined;
};

export const DEFAULT_IPVS_SCHEDULER = 'rr';

/** The schedulers ipvsadm 1.31 documents; each is a kernel module ip_vs_<name>. */
export const IPVS_SCHEDULERS = ['rr', 'wrr', 'lc', 'wlc', 'lblc', 'lblcr', 'dh', 'sh', 'sed', 'nq', 'fo', 'ovf', 'mh'] as const;

export function defaultIpvsOptions(overrides: Partial<IpvsOptions> = {}): IpvsOptions {
  return { ...defaultIptablesRulesOptions(), scheduler: DEFAULT_IPVS_SCHEDULER, nodePortAddresses: 'all', nodePortIPs: undefined, ...overrides };
}
