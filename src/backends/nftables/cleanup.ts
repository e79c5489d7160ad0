import type { IPFamily } from '../../model/ip.js';
import { NFT_APPLY, listTables, nftFamily } from '../../kernel/nft.js';
import { runStep } from '../../kernel/tool.js';
import type { IpvsCleanup } from '../ipvs/cleanup.js';
import { TABLE_NAME } from './options.js';

/** What the nftables step of `switchboard cleanup` did: the same shape as the IPVS step's. */
export type NftablesCleanup = IpvsCleanup;

/**
 * Removes the nftables backend's table in each family (`delete table ip kube-proxy`): everything it created
 * lives there, and nothing else does. Without the nft tool there is no table of ours to remove.
 */
export async function cleanupNftables(dryRun: boolean): Promise<NftablesCleanup> {
  const present: string[] = [];
  for (const family of ['IPv4', 'IPv6'] as const satisfies readonly IPFamily[]) {
    const tables = await listTables(family);
    if (tables === undefined) return { summary: 'nftables: nothing to remove (no nft tool)', printed: '' };
    if (tables.includes(TABLE_NAME)) present.push(`${nftFamily(family)} ${TABLE_NAME}`);
  }
  if (present.length === 0) return { summary: 'nftables: nothing to remove', printed: '' };
  const input = present.map((q) => `delete table ${q}\n`).join('');
  if (dryRun) return { summary: `nftables: would delete table ${present.join(', ')}`, printed: `#### nft -f -\n${input}` };
  await runStep({ kind: 'input', tool: NFT_APPLY, input: [input], atomic: true }, [input]);
  return { summary: `nftables: deleted table ${present.join(', ')}`, printed: '' };
}
