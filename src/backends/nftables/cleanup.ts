import { NFT_APPLY, listTables } from '../../kernel/nft.js';
import { nft, nftFamily } from '../../kernel/syntax/nft.js';
import type { IPFamily } from '../../model/ip.js';
import { type BackendCleanup, nothingToRemove } from '../backend.js';
import { TABLE_NAME, ourTable } from './options.js';

/**
 * Removes the nftables backend's table in each family (`delete table ip kube-proxy`): everything it created
 * lives there, and nothing else does. Without the nft tool there is no table of ours to remove.
 */
export const NFTABLES_CLEANUP: BackendCleanup = {
  stages: [
    {
      name: 'nftables',
      bestEffort: false,
      async plan() {
        const present: IPFamily[] = [];
        for (const family of ['IPv4', 'IPv6'] as const satisfies readonly IPFamily[]) {
          const tables = await listTables(family);
          if (tables === undefined) return nothingToRemove('nothing to remove (no nft tool)');
          if (tables.includes(TABLE_NAME)) present.push(family);
        }
        if (present.length === 0) return nothingToRemove();
        // One transaction per table: the table names its family.
        const steps = present.map((family) => ({ kind: 'nft', tool: NFT_APPLY, transaction: { table: ourTable(family), ops: [nft.deleteTable()] } }) as const);
        const what = `table ${present.map((f) => `${nftFamily(f)} ${TABLE_NAME}`).join(', ')}`;
        return { steps, done: `deleted ${what}`, wouldDo: `would delete ${what}` };
      },
    },
  ],
  sets: [],
};
