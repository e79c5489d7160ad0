import type { ProxyBackend } from '../backends/backend.js';
import { IptablesBackend } from '../backends/iptables/backend.js';
import { MAX_CHAINS_PER_TRANSACTION, defaultIptablesOptions, maxChainsPerTransaction } from '../backends/iptables/options.js';
import { defaultIpvsOptions } from '../backends/ipvs/options.js';
import { defaultNftablesOptions } from '../backends/nftables/options.js';
import { defaultIptablesTools, iptablesCommands } from '../kernel/iptables.js';
import { type IptablesMode, detectIptablesMode } from '../kernel/iptables-mode.js';
import { readSysctl } from '../kernel/sysctl.js';
import type { ProxyConfig } from './config.js';
import { nftablesNodePortAddresses, resolveNodePortAddresses } from './nodeport-addresses.js';
import { localAddresses } from '../kernel/local-addresses.js';

export interface CreatedBackend {
  readonly backend: ProxyBackend;
  /** The iptables mode chosen (the iptables and IPVS backends write iptables rules); undefined for a dry run and for nftables. */
  readonly iptablesMode: { readonly mode: IptablesMode; readonly reason: string } | undefined;
}

/**
 * The backend `--backend` names, configured as `compile` and `run` both need it. Applying follows the node:
 * its iptables mode (legacy or nft) and that mode's transaction size, and whether conntrack is liberal. A dry
 * run never reads the machine, so it shows kube-proxy's defaults.
 */
export async function createBackend(config: ProxyConfig, opts: { readonly dryRun: boolean }): Promise<CreatedBackend> {
  const common = {
    family: config.family,
    clusterCidr: config.clusterCidrs[config.family],
    masqueradeAll: config.masqueradeAll,
  };
  // nftables mode writes no iptables rule: nothing to detect (both modes' iptables-save) or to decide on.
  // The IPVS and nftables backends (some twenty modules) are loaded only when chosen.
  if (config.backend === 'nftables') {
    const { NftablesBackend } = await import('../backends/nftables/backend.js');
    return { backend: new NftablesBackend(defaultNftablesOptions({ ...common, nodePortAddresses: nftablesNodePortAddresses(config) })), iptablesMode: undefined };
  }
  const iptablesMode = opts.dryRun ? undefined : await detectIptablesMode(config.iptablesMode);
  const tools = iptablesMode === undefined ? defaultIptablesTools(config.family) : iptablesCommands(iptablesMode.mode, config.family);
  // kube-proxy installs the ctstate INVALID drop only when the kernel is not in "be liberal" TCP mode.
  const dropInvalid = opts.dryRun ? true : ((await readSysctl('net/netfilter/nf_conntrack_tcp_be_liberal')) ?? '0') === '0';
  if (config.backend === 'ipvs') {
    const { IpvsBackend } = await import('../backends/ipvs/backend.js');
    const nodePortAddresses = resolveNodePortAddresses(config);
    // Every local address but the Service addresses IPVS mode binds to kube-ipvs0 (upstream's GetAllLocalAddressesExcept).
    const nodePortIPs = nodePortAddresses === 'all' ? localAddresses(['kube-ipvs0']) : undefined;
    const options = defaultIpvsOptions({ ...common, dropInvalid, scheduler: config.ipvsScheduler, nodePortAddresses, nodePortIPs });
    return { backend: new IpvsBackend(options, tools), iptablesMode };
  }
  const options = defaultIptablesOptions({
    ...common,
    dropInvalid,
    maxChainsPerTransaction: iptablesMode === undefined ? MAX_CHAINS_PER_TRANSACTION : maxChainsPerTransaction(iptablesMode.mode),
    layout: config.iptablesLayout,
    nodePortAddresses: resolveNodePortAddresses(config),
    localhostNodePorts: config.localhostNodePorts,
  });
  return { backend: new IptablesBackend(options, tools), iptablesMode };
}
