import { localAddresses } from '../kernel/local-addresses.js';
import { cidrContains } from '../model/ip.js';
import { type FamilyConfig, type ProxyConfig, familyConfig } from './config.js';
import type { IPFamily } from '../model/ip.js';
import { UsageError } from './errors.js';

/**
 * `--nodeport-addresses` as addresses of this network namespace (upstream's GetNodeIPs), read now: `all` for
 * every local address (unset, or a /0), the node IP for `primary`, else the local addresses inside the CIDRs.
 */
export function resolveNodePortAddresses(config: FamilyConfig): 'all' | readonly string[] {
  const flag = config.nodePortAddresses;
  switch (flag.kind) {
    case 'default':
    case 'all':
      return 'all';
    case 'primary':
      if (config.nodeIP === undefined) throw new UsageError(`--nodeport-addresses primary: needs an ${config.family} --node-ip with this backend`);
      return [config.nodeIP];
    case 'cidrs':
      return localAddresses().filter((ip) => flag.cidrs.some((c) => cidrContains(c, ip)));
  }
}

/**
 * The nftables backend's form: unset means the primary node IP there (kube-proxy's nftables default), which the
 * backend reads from the node's IPs as they change; `primary` likewise, without needing --node-ip.
 */
export function nftablesNodePortAddresses(config: FamilyConfig): 'primary' | 'all' | readonly string[] {
  const flag = config.nodePortAddresses;
  if (flag.kind === 'default' || flag.kind === 'primary') return 'primary';
  return resolveNodePortAddresses(config);
}

/**
 * Where the per-service health-check servers listen: upstream's nodePortAddresses.GetNodeIPs() for the backend's
 * default. For nftables that is the primary node IP; without --node-ip it is only learnt from the Node object
 * later, so the servers listen on every address then (the listeners are not moved as the node's IPs change).
 */
export function healthCheckAddresses(config: ProxyConfig, families: readonly IPFamily[]): readonly string[] {
  const out: string[] = [];
  for (const family of families) {
    const fc = familyConfig(config, family);
    let addresses: 'all' | readonly string[];
    if (config.backend === 'nftables' && (fc.nodePortAddresses.kind === 'default' || fc.nodePortAddresses.kind === 'primary')) {
      addresses = fc.nodeIP === undefined ? 'all' : [fc.nodeIP];
    } else addresses = resolveNodePortAddresses(fc);
    // One family on every address makes the server listen on every address (of both families).
    if (addresses === 'all') return [];
    out.push(...addresses);
  }
  return out;
}
