import { type NftTable, nftFamily } from '../../kernel/syntax/nft.js';
import type { IPFamily } from '../../model/ip.js';
import { type CommonOptions, defaultIptablesRulesOptions } from '../shared/options.js';

/** Everything besides cluster state that changes the nftables ruleset. */
export type NftablesOptions = CommonOptions;

export function defaultNftablesOptions(overrides: Partial<NftablesOptions> = {}): NftablesOptions {
  const { family, clusterCidr, masqueradeAll, masqueradeMark } = defaultIptablesRulesOptions(overrides);
  return { family, clusterCidr, masqueradeAll, masqueradeMark };
}

/** kube-proxy's table name in both families. */
export const TABLE_NAME = 'kube-proxy';

/** The words nft uses for one IP family. */
export interface FamilySyntax {
  /** Address match prefix: `ip daddr`, `ip6 saddr`. */
  readonly match: 'ip' | 'ip6';
  readonly addrType: 'ipv4_addr' | 'ipv6_addr';
}

export function familySyntax(family: IPFamily): FamilySyntax {
  return family === 'IPv4' ? { match: 'ip', addrType: 'ipv4_addr' } : { match: 'ip6', addrType: 'ipv6_addr' };
}

/** Our table in this family: `ip kube-proxy` or `ip6 kube-proxy`, named in every transaction. */
export function ourTable(family: IPFamily): NftTable {
  return { family: nftFamily(family), name: TABLE_NAME };
}
