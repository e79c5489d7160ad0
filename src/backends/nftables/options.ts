import { type NftTable, nftFamily } from '../../kernel/syntax/nft.js';
import { type IPFamily, parseIP } from '../../model/ip.js';
import { type CommonOptions, defaultIptablesRulesOptions } from '../shared/options.js';

/**
 * Where NodePorts answer (kube-proxy's --nodeport-addresses): `primary`, the node's primary IP of the family
 * (kube-proxy's nftables default); `all` local addresses but loopback (`fib daddr type local`); or these node
 * IPs (the local addresses inside --nodeport-addresses; loopback ones and other families are skipped).
 */
export type NodePortAddresses = 'primary' | 'all' | readonly string[];

/** Everything besides cluster state that changes the nftables ruleset. */
export interface NftablesOptions extends CommonOptions {
  readonly nodePortAddresses: NodePortAddresses;
}

export function defaultNftablesOptions(overrides: Partial<NftablesOptions> = {}): NftablesOptions {
  const { family, clusterCidr, masqueradeAll, masqueradeMark } = defaultIptablesRulesOptions(overrides);
  return { family, clusterCidr, masqueradeAll, masqueradeMark, nodePortAddresses: overrides.nodePortAddresses ?? 'primary' };
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

/** The node's primary IP of the family (the first of `ips` in it), as kube-proxy's nodeIP; undefined without one. */
export function primaryNodeIP(family: IPFamily, ips: readonly string[]): string | undefined {
  return ips.find((ip) => parseIP(ip)?.family === family);
}

const isLoopback = (ip: string): boolean => ip.startsWith('127.') || ip === '::1';

/**
 * The members of the `nodeport-ips` set, or undefined for `all` (no set: kube-proxy's MatchAll form). Loopback
 * addresses are skipped as kube-proxy skips them ("localhost NodePorts are not supported" in nftables mode).
 */
export function nodePortIPs(opts: Pick<NftablesOptions, 'family' | 'nodePortAddresses'>, nodeIPs: readonly string[]): readonly string[] | undefined {
  if (opts.nodePortAddresses === 'all') return undefined;
  if (opts.nodePortAddresses === 'primary') {
    const ip = primaryNodeIP(opts.family, nodeIPs);
    return ip === undefined || isLoopback(ip) ? [] : [ip];
  }
  const out: string[] = [];
  for (const text of opts.nodePortAddresses) {
    const ip = parseIP(text);
    if (ip !== undefined && ip.family === opts.family && !isLoopback(ip.text) && !out.includes(ip.text)) out.push(ip.text);
  }
  return out;
}
