import { ExecaError, execa } from 'execa';
import type { IPFamily } from '../../model/ip.js';
import { ApplyError, describe, toolOutput } from '../iptables/apply.js';
import type { IpvsCleanup } from '../ipvs/cleanup.js';
import { familySyntax } from './options.js';

/** What the nftables step of `switchboard cleanup` did: the same shape as the IPVS step's. */
export type NftablesCleanup = IpvsCleanup;

/**
 * Removes the nftables backend's table in each family (`delete table ip kube-proxy`): everything it created
 * lives there, and nothing else does. Without the nft tool there is no table of ours to remove.
 */
export async function cleanupNftables(dryRun: boolean): Promise<NftablesCleanup> {
  const present: string[] = [];
  for (const family of ['IPv4', 'IPv6'] as const satisfies readonly IPFamily[]) {
    const { table, qualified } = familySyntax(family);
    let stdout: string;
    try {
      ({ stdout } = await execa('nft', ['list', 'tables', table], { timeout: 30_000 }));
    } catch (e) {
      if (e instanceof ExecaError && e.code === 'ENOENT') return { summary: 'nftables: nothing to remove (no nft tool)', printed: '' };
      throw new ApplyError(`nft list tables ${table} failed: ${describe(e, 'nftables')}`, toolOutput(e), []);
    }
    if (stdout.split('\n').some((l) => l.trim() === `table ${qualified}`)) present.push(qualified);
  }
  if (present.length === 0) return { summary: 'nftables: nothing to remove', printed: '' };
  const input = present.map((q) => `delete table ${q}\n`).join('');
  if (dryRun) return { summary: `nftables: would delete table ${present.join(', ')}`, printed: `#### nft -f -\n${input}` };
  try {
    await execa('nft', ['-f', '-'], { input, timeout: 120_000 });
  } catch (e) {
    throw new ApplyError(`nft -f failed: ${describe(e, 'nftables')}`, toolOutput(e), input.trim().split('\n'));
  }
  return { summary: `nftables: deleted table ${present.join(', ')}`, printed: '' };
}
