import type { IPFamily } from '../../model/ip.js';
import { type CommonOptions, defaultIptablesRulesOptions } from '../shared/options.js';

/** Everything besides cluster state that changes the nftables ruleset. */
export type NftablesOptions = CommonOptions;

export function defaultNftablesOptions(overrides: Partial<NftablesOptions> = {}): NftablesOptions {
  const { family, node, clusterCidr, masqueradeAll, masqueradeMark } = defaultIptablesRulesOptions(overrides);
  return { family, node, clusterCidr, masqueradeAll, masqueradeMark };
}

/** kube-proxy's table name in both families. */
export const TABLE_NAME = 'kube-proxy';

/** The words nft uses for one IP family. */
export interface FamilySyntax {
  /** Table family: `ip` or `ip6`. */
  readonly table: string;
  /** Address match prefix: `ip daddr`, `ip6 saddr`. */
  readonly match: string;
  readonly addrType: string;
  /** `ip kube-proxy`: what every command names. */
  readonly qualified: string;
}

export function familySyntax(family: IPFamily): FamilySyntax {
  const table = family === 'IPv4' ? 'ip' : 'ip6';
  return { table, match: table, addrType: family === 'IPv4' ? 'ipv4_addr' : 'ipv6_addr', qualified: `${table} ${TABLE_NAME}` };
}

/** `dnat to` target of one endpoint: `ip:port`, or `[ip]:port` for IPv6. */
export function natTarget(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}
