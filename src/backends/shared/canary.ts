import { type IptablesTools, chainExists } from '../../kernel/iptables.js';
import { FIXED_CHAINS, KUBE_PROXY_CANARY, type Table } from './iptables-fixed.js';

/** False if our canary chain is missing from any table: someone flushed them (iptables and IPVS mode declare it). */
export async function canaryChainsPresent(tools: IptablesTools): Promise<boolean> {
  const tables = Object.keys(FIXED_CHAINS) as Table[];
  const present = await Promise.all(tables.map((t) => chainExists(tools, t, KUBE_PROXY_CANARY)));
  return present.every(Boolean);
}
