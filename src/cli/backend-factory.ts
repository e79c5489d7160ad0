import type { ProxyBackend } from '../backends/backend.js';
import { IptablesBackend } from '../backends/iptables/backend.js';
import { MAX_CHAINS_PER_TRANSACTION, defaultIptablesOptions, maxChainsPerTransaction } from '../backends/iptables/options.js';
import { defaultIpvsOptions } from '../backends/ipvs/options.js';
import { defaultNftablesOptions } from '../backends/nftables/options.js';
import { familySupport } from '../kernel/family-support.js';
import { defaultIptablesTools, iptablesCommands } from '../kernel/iptables.js';
import { type IptablesMode, detectIptablesMode } from '../kernel/iptables-mode.js';
import { readSysctl } from '../kernel/sysctl.js';
import type { IPFamily } from '../model/ip.js';
import { parseIP } from '../model/ip.js';
import { type ProxyConfig, familyConfig } from './config.js';
import { nftablesNodePortAddresses, resolveNodePortAddresses } from './nodeport-addresses.js';
import { localAddresses } from '../kernel/local-addresses.js';

/** One family's backend. */
export interface FamilyBackend {
  readonly family: IPFamily;
  readonly backend: ProxyBackend;
}

export interface CreatedBackends {
  /** The primary family's first. */
  readonly backends: readonly FamilyBackend[];
  /** The iptables mode chosen (the iptables and IPVS backends write iptables rules); undefined for a dry run and for nftables. */
  readonly iptablesMode: { readonly mode: IptablesMode; readonly reason: string } | undefined;
  /** Families asked for but not programmed, and why (kube-proxy falls back to single-stack the same way). */
  readonly skipped: readonly { readonly family: IPFamily; readonly why: string }[];
}

/**
 * One backend per family `--backend` names, configured as `compile` and `run` both need it. Applying follows the
 * node: its iptables mode (legacy or nft) and that mode's transaction size, whether conntrack is liberal, and
 * which families it can program (a family it cannot is skipped, as kube-proxy runs single-stack then). A dry run
 * never reads the machine, so it shows kube-proxy's defaults for every family asked for.
 */
export async function createBackends(config: ProxyConfig, families: readonly IPFamily[], opts: { readonly dryRun: boolean }): Promise<CreatedBackends> {
  const ordered = [...families].sort((a, b) => (a === config.primaryFamily ? -1 : b === config.primaryFamily ? 1 : 0));
  // nftables mode writes no iptables rule: nothing to detect (both modes' iptables-save) or to decide on.
  const iptablesMode = opts.dryRun || config.backend === 'nftables' ? undefined : await detectIptablesMode(config.iptablesMode);
  const toolsOf = (family: IPFamily) => (iptablesMode === undefined ? defaultIptablesTools(family) : iptablesCommands(iptablesMode.mode, family));
  const backends: FamilyBackend[] = [];
  const skipped: { family: IPFamily; why: string }[] = [];
  for (const family of ordered) {
    // Until IPVS mode's IPv6 ipsets have their own names (upstream's KUBE-6-…), a second family would overwrite
    // the first's sets: IPVS runs single-stack in the primary family.
    if (config.backend === 'ipvs' && family !== ordered[0]) {
      skipped.push({ family, why: 'the IPVS backend is single-stack for now (its ipsets are not per family yet)' });
      continue;
    }
    if (!opts.dryRun) {
      const support = await familySupport(family, config.backend === 'nftables' ? undefined : toolsOf(family));
      if (!support.ok) {
        skipped.push({ family, why: support.why });
        continue;
      }
    }
    backends.push({ family, backend: await createFamilyBackend(config, family, toolsOf(family), iptablesMode?.mode, opts) });
  }
  return { backends, iptablesMode, skipped };
}

async function createFamilyBackend(
  config: ProxyConfig,
  family: IPFamily,
  tools: ReturnType<typeof defaultIptablesTools>,
  iptablesMode: IptablesMode | undefined,
  opts: { readonly dryRun: boolean },
): Promise<ProxyBackend> {
  const fc = familyConfig(config, family);
  const common = { family, clusterCidr: fc.clusterCidr, masqueradeAll: config.masqueradeAll };
  // The IPVS and nftables backends (some twenty modules) are loaded only when chosen.
  if (config.backend === 'nftables') {
    const { NftablesBackend } = await import('../backends/nftables/backend.js');
    return new NftablesBackend(defaultNftablesOptions({ ...common, nodePortAddresses: nftablesNodePortAddresses(fc) }));
  }
  // kube-proxy installs the ctstate INVALID drop only when the kernel is not in "be liberal" TCP mode.
  const dropInvalid = opts.dryRun ? true : ((await readSysctl('net/netfilter/nf_conntrack_tcp_be_liberal')) ?? '0') === '0';
  if (config.backend === 'ipvs') {
    const { IpvsBackend } = await import('../backends/ipvs/backend.js');
    const nodePortAddresses = resolveNodePortAddresses(fc);
    // Every local address of the family but the Service addresses IPVS mode binds to kube-ipvs0 (upstream's GetAllLocalAddressesExcept).
    const nodePortIPs = nodePortAddresses === 'all' ? localAddresses(['kube-ipvs0']).filter((ip) => parseIP(ip)?.family === family) : undefined;
    const options = defaultIpvsOptions({ ...common, dropInvalid, scheduler: config.ipvsScheduler, nodePortAddresses, nodePortIPs });
    return new IpvsBackend(options, tools);
  }
  const options = defaultIptablesOptions({
    ...common,
    dropInvalid,
    maxChainsPerTransaction: iptablesMode === undefined ? MAX_CHAINS_PER_TRANSACTION : maxChainsPerTransaction(iptablesMode),
    layout: config.iptablesLayout,
    nodePortAddresses: resolveNodePortAddresses(fc),
    // Localhost NodePorts are IPv4 only, as upstream (IPv6 has no route_localnet).
    localhostNodePorts: config.localhostNodePorts && family === 'IPv4',
  });
  return new IptablesBackend(options, tools);
}
