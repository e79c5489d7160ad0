import { hostname } from 'node:os';
import { BACKENDS, type BackendName } from '../backends/backend.js';
import { IPTABLES_LAYOUTS, type IptablesLayout } from '../backends/iptables/options.js';
import { DEFAULT_IPVS_SCHEDULER, IPVS_SCHEDULERS } from '../backends/ipvs/options.js';
import { IPTABLES_MODE_ENV, type IptablesMode } from '../kernel/iptables-mode.js';
import { type Cidr, type IPFamily, type MaskedCidr, parseCidr, parseCidrMasked, parseIP } from '../model/ip.js';
import { UsageError } from './errors.js';


/** Flags shared by every command that compiles rules. */
export interface ProxyConfig {
  readonly backend: BackendName;
  /** The family of the first --node-ip (IPv4 without one): its lane syncs first, as kube-proxy's primary proxier. */
  readonly primaryFamily: IPFamily;
  readonly nodeName: string;
  /** `--node-ip`: at most one per family. */
  readonly nodeIPs: Readonly<Partial<Record<IPFamily, string>>>;
  /** At most one pod CIDR per family, as kube-proxy's --cluster-cidr. */
  readonly clusterCidrs: Readonly<Partial<Record<IPFamily, string>>>;
  readonly masqueradeAll: boolean;
  /** The iptables backend's rule layout (kube-proxy's, or flat: see options.ts). */
  readonly iptablesLayout: IptablesLayout;
  /** The IPVS backend's scheduler for every virtual server. */
  readonly ipvsScheduler: string;
  /** `SWITCHBOARD_IPTABLES_MODE`: the iptables mode to use instead of detecting it. */
  readonly iptablesMode: IptablesMode | undefined;
  /** `--nodeport-addresses`, each family's part. */
  readonly nodePortAddresses: Readonly<Record<IPFamily, NodePortAddressesFlag>>;
  /** `--iptables-localhost-nodeports` (iptables backend, IPv4). */
  readonly localhostNodePorts: boolean;
}

/**
 * Where NodePorts answer, as kube-proxy's --nodeport-addresses: unset (each backend's default: every local
 * address for iptables and IPVS, the primary node IP for nftables), `primary`, or CIDRs whose local
 * addresses do. CIDRs of the other family are ignored; none of this family, or 0.0.0.0/0, means all.
 */
export type NodePortAddressesFlag =
  | { readonly kind: 'default' }
  | { readonly kind: 'all' }
  | { readonly kind: 'primary' }
  | { readonly kind: 'cidrs'; readonly cidrs: readonly MaskedCidr[] };

export interface RawProxyFlags {
  readonly backend: string;
  readonly nodeName?: string | undefined;
  readonly nodeIp?: string | undefined;
  readonly clusterCidr?: string | undefined;
  readonly masqueradeAll?: boolean | undefined;
  readonly iptablesLayout?: string | undefined;
  readonly ipvsScheduler?: string | undefined;
  readonly nodeportAddresses?: string | undefined;
  readonly iptablesLocalhostNodeports?: string | undefined;
}

export function buildProxyConfig(flags: RawProxyFlags, env: NodeJS.ProcessEnv = process.env): ProxyConfig {
  if (!(BACKENDS as readonly string[]).includes(flags.backend)) {
    throw new UsageError(`--backend: "${flags.backend}" is not one of ${BACKENDS.join(', ')}`);
  }
  const backend = flags.backend as BackendName;
  const nodeIPs: Partial<Record<IPFamily, string>> = {};
  let primaryFamily: IPFamily = 'IPv4';
  if (flags.nodeIp !== undefined && flags.nodeIp.trim() !== '') {
    for (const [i, part] of flags.nodeIp.split(',').entries()) {
      const ip = parseIP(part.trim());
      if (ip === undefined) throw new UsageError(`--node-ip: "${part.trim()}" is not an IP address`);
      if (nodeIPs[ip.family] !== undefined) throw new UsageError(`--node-ip: at most one ${ip.family} address (got ${nodeIPs[ip.family]} and ${ip.text})`);
      nodeIPs[ip.family] = ip.text;
      if (i === 0) primaryFamily = ip.family;
    }
  }
  const clusterCidrs: Partial<Record<IPFamily, string>> = {};
  if (flags.clusterCidr !== undefined && flags.clusterCidr.trim() !== '') {
    for (const part of flags.clusterCidr.split(',')) {
      const cidr: Cidr | { error: string } = parseCidr(part.trim());
      if ('error' in cidr) throw new UsageError(`--cluster-cidr: ${cidr.error}`);
      if (clusterCidrs[cidr.family] !== undefined) {
        throw new UsageError(`--cluster-cidr: at most one ${cidr.family} CIDR (got ${clusterCidrs[cidr.family]} and ${cidr.text})`);
      }
      clusterCidrs[cidr.family] = cidr.text;
    }
  }
  const nodeName = (flags.nodeName ?? env['NODE_NAME'] ?? hostname()).trim().toLowerCase();
  if (nodeName === '') throw new UsageError('--node-name: must not be empty');
  const layout = flags.iptablesLayout ?? 'kube-proxy';
  if (!(IPTABLES_LAYOUTS as readonly string[]).includes(layout)) {
    throw new UsageError(`--iptables-layout: "${layout}" is not one of ${IPTABLES_LAYOUTS.join(', ')}`);
  }
  const ipvsScheduler = flags.ipvsScheduler ?? DEFAULT_IPVS_SCHEDULER;
  if (!(IPVS_SCHEDULERS as readonly string[]).includes(ipvsScheduler)) {
    throw new UsageError(`--ipvs-scheduler: "${ipvsScheduler}" is not one of ${IPVS_SCHEDULERS.join(', ')}`);
  }
  const localhost = (flags.iptablesLocalhostNodeports ?? 'true').trim().toLowerCase();
  if (localhost !== 'true' && localhost !== 'false') {
    throw new UsageError(`--iptables-localhost-nodeports: "${flags.iptablesLocalhostNodeports ?? ''}" is not true or false`);
  }
  return {
    backend,
    primaryFamily,
    nodePortAddresses: { IPv4: parseNodePortAddresses(flags.nodeportAddresses, 'IPv4'), IPv6: parseNodePortAddresses(flags.nodeportAddresses, 'IPv6') },
    localhostNodePorts: localhost === 'true',
    nodeName,
    nodeIPs,
    clusterCidrs,
    masqueradeAll: flags.masqueradeAll ?? false,
    iptablesLayout: layout as IptablesLayout,
    ipvsScheduler,
    iptablesMode: iptablesModeOverride(env),
  };
}

/** `SWITCHBOARD_IPTABLES_MODE`, validated; undefined when unset or empty. */
export function iptablesModeOverride(env: NodeJS.ProcessEnv = process.env): IptablesMode | undefined {
  const value = env[IPTABLES_MODE_ENV]?.trim().toLowerCase();
  if (value === undefined || value === '') return undefined;
  if (value === 'legacy' || value === 'nft') return value;
  throw new UsageError(`${IPTABLES_MODE_ENV}: "${env[IPTABLES_MODE_ENV] ?? ''}" is not one of legacy, nft`);
}

/** `--nodeport-addresses` for `family`: `primary`, or comma-separated CIDRs (validated strictly: a typo opens ports). */
export function parseNodePortAddresses(value: string | undefined, family: IPFamily): NodePortAddressesFlag {
  if (value === undefined || value.trim() === '') return { kind: 'default' };
  const parts = value.split(',').map((p) => p.trim()).filter((p) => p !== '');
  if (parts.length === 1 && parts[0] === 'primary') return { kind: 'primary' };
  const cidrs: MaskedCidr[] = [];
  for (const part of parts) {
    const strict = parseCidr(part);
    if ('error' in strict) throw new UsageError(`--nodeport-addresses: ${strict.error}${part === 'primary' ? ' (primary must be the only value)' : ''}`);
    const cidr = parseCidrMasked(strict.text)!;
    if (cidr.family === family) cidrs.push(cidr);
  }
  if (cidrs.length === 0 || cidrs.some((c) => c.prefix === 0)) return { kind: 'all' };
  return { kind: 'cidrs', cidrs };
}

/** The configuration one family's backend sees. */
export interface FamilyConfig {
  readonly family: IPFamily;
  readonly nodeIP: string | undefined;
  readonly clusterCidr: string | undefined;
  readonly nodePortAddresses: NodePortAddressesFlag;
}

export function familyConfig(config: ProxyConfig, family: IPFamily): FamilyConfig {
  return { family, nodeIP: config.nodeIPs[family], clusterCidr: config.clusterCidrs[family], nodePortAddresses: config.nodePortAddresses[family] };
}

/** The node IPs given, primary first (what the state's node IPs start as). */
export function nodeIPList(config: ProxyConfig): string[] {
  const other: IPFamily = config.primaryFamily === 'IPv4' ? 'IPv6' : 'IPv4';
  return [config.nodeIPs[config.primaryFamily], config.nodeIPs[other]].filter((ip): ip is string => ip !== undefined);
}
