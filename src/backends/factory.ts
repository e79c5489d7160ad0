import type { ProxyConfig } from '../config.js';
import type { ProxyBackend } from '../sync/backend.js';
import { conntrackTcpBeLiberal, defaultIptablesTools } from './iptables/apply.js';
import { IptablesBackend } from './iptables/backend.js';
import { type IptablesMode, detectIptablesMode, iptablesCommands, maxChainsPerTransaction } from './iptables/mode.js';
import { MAX_CHAINS_PER_TRANSACTION, defaultIptablesOptions } from './iptables/options.js';
import { IpvsBackend } from './ipvs/backend.js';
import { defaultIpvsOptions } from './ipvs/options.js';
import { NftablesBackend } from './nftables/backend.js';
import { defaultNftablesOptions } from './nftables/options.js';

export interface CreatedBackend {
  readonly backend: ProxyBackend & { readonly serviceCount: number };
  /** The iptables mode chosen (the iptables and IPVS backends write iptables rules); undefined for a dry run and for nftables. */
  readonly iptablesMode: { readonly mode: IptablesMode; readonly reason: string } | undefined;
}

/**
 * The backend `--backend` names, configured as `compile` and `run` both need it. Applying follows the node:
 * its iptables mode (legacy or nft) and that mode's transaction size, and whether conntrack is liberal. A dry
 * run never reads the machine, so it shows kube-proxy's defaults.
 */
export async function createBackend(config: ProxyConfig, opts: { readonly dryRun: boolean; readonly nodeZone?: string | undefined }): Promise<CreatedBackend> {
  const common = {
    family: config.family,
    node: { name: config.nodeName, zone: opts.nodeZone },
    clusterCidr: config.clusterCidrs[config.family],
    masqueradeAll: config.masqueradeAll,
  };
  // nftables mode writes no iptables rule: nothing to detect (both modes' iptables-save) or to decide on.
  if (config.backend === 'nftables') return { backend: new NftablesBackend(defaultNftablesOptions(common)), iptablesMode: undefined };
  const iptablesMode = opts.dryRun ? undefined : await detectIptablesMode();
  const tools = iptablesMode === undefined ? defaultIptablesTools(config.family) : iptablesCommands(iptablesMode.mode, config.family);
  const dropInvalid = opts.dryRun ? true : !(await conntrackTcpBeLiberal());
  if (config.backend === 'ipvs') {
    return { backend: new IpvsBackend(defaultIpvsOptions({ ...common, dropInvalid, scheduler: config.ipvsScheduler }), tools), iptablesMode };
  }
  const options = defaultIptablesOptions({
    ...common,
    dropInvalid,
    maxChainsPerTransaction: iptablesMode === undefined ? MAX_CHAINS_PER_TRANSACTION : maxChainsPerTransaction(iptablesMode.mode),
    layout: config.iptablesLayout,
  });
  return { backend: new IptablesBackend(options, tools), iptablesMode };
}
