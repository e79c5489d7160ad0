import { type IptablesRulesOptions, defaultIptablesRulesOptions } from '../shared/options.js';

/**
 * Everything besides cluster state that changes what IPVS mode programs: what its few iptables rules and
 * endpoint selection read, and the scheduler.
 */
export type IpvsOptions = IptablesRulesOptions & {
  /** The IPVS scheduler of every virtual server (`--ipvs-scheduler`), kube-proxy's default rr. */
  readonly scheduler: string;
};

export const DEFAULT_IPVS_SCHEDULER = 'rr';

/** The schedulers ipvsadm 1.31 documents; each is a kernel module ip_vs_<name>. */
export const IPVS_SCHEDULERS = ['rr', 'wrr', 'lc', 'wlc', 'lblc', 'lblcr', 'dh', 'sh', 'sed', 'nq', 'fo', 'ovf', 'mh'] as const;

export function defaultIpvsOptions(overrides: Partial<IpvsOptions> = {}): IpvsOptions {
  return { ...defaultIptablesRulesOptions(), scheduler: DEFAULT_IPVS_SCHEDULER, ...overrides };
}
