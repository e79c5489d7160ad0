import { NFT_APPLY, listTables, nftFamily } from '../../kernel/nft.js';
import type { IPFamily } from '../../model/ip.js';
import { type BackendCleanup, nothingToRemove } from '../backend.js';
import { TABLE_NAME } from './options.js';

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
        const present: string[] = [];
        for (const family of ['IPv4', 'IPv6'] as const satisfies readonly IPFamily[]) {
          const tables = await listTables(family);
          if (tables === undefined) return nothingToRemove('nothing to remove (no nft tool)');
          if (tables.includes(TABLE_NAME)) present.push(`${nftFamily(family)} ${TABLE_NAME}`);
        }
        if (present.length === 0) return nothingToRemove();
        const input = present.map((q) => `delete table ${q}\n`).join('');
        const what = `table ${present.join(', ')}`;
        return { steps: [{ kind: 'input', tool: NFT_APPLY, input: [input], atomic: true }], done: `deleted ${what}`, wouldDo: `would delete ${what}` };
      },
    },
  ],
  sets: [],
};
