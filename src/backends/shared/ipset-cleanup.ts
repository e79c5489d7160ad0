import { destroyTool, listIpsets } from '../../kernel/ipset.js';
import { type CleanupStage, nothingToRemove } from '../backend.js';

/**
 * The last stage of `switchboard cleanup`: destroy whichever of `names` exist (the flat layout's and IPVS mode's
 * sets), once the rules naming them are gone. Without the ipset tool no set of ours can exist.
 */
export function ipsetCleanup(names: readonly string[], list: () => Promise<string[] | undefined> = listIpsets): CleanupStage {
  return {
    name: 'ipsets',
    bestEffort: false,
    async plan() {
      const wanted = new Set(names);
      const ours = ((await list()) ?? []).filter((name) => wanted.has(name));
      if (ours.length === 0) return nothingToRemove();
      return {
        steps: ours.map((name) => ({ kind: 'command', tool: destroyTool(name) }) as const),
        done: `destroyed ${ours.join(', ')}`,
        wouldDo: `would destroy ${ours.join(', ')}`,
      };
    },
  };
}
