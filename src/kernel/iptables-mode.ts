import { ToolError, runTool } from './exec.js';

/**
 * iptables legacy vs nft. Both talk to the kernel, but to different tables: rules written with one are
 * invisible to the other, so the agent must use the mode the node (kubelet, the CNI) already uses, or
 * its rules run beside theirs in an unpredictable order. The container image cannot know it in advance.
 */
export type IptablesMode = 'legacy' | 'nft';

/** Operators set this to `legacy` or `nft` to skip detection (for example on a node with no rules yet); read by the CLI's config. */
export const IPTABLES_MODE_ENV = 'SWITCHBOARD_IPTABLES_MODE';

export interface RuleCounts {
  /** Rules (`-A` lines) that iptables-legacy-save and ip6tables-legacy-save print together. */
  readonly legacy: number;
  /** The same for iptables-nft-save and ip6tables-nft-save. */
  readonly nft: number;
  /** The mode in which kubelet's KUBE-IPTABLES-HINT or KUBE-KUBELET-CANARY chain was found, nft checked first. */
  readonly kubeletHint?: IptablesMode;
}

/**
 * The choice kube-proxy's image makes (kubernetes-sigs/iptables-wrappers, iptables-wrapper script):
 * 1. kubelet (1.17+) creates KUBE-IPTABLES-HINT / KUBE-KUBELET-CANARY in mangle with its own iptables, so a
 *    mode that has them is the node's mode; nft is looked at first, so it wins if both have them.
 * 2. Otherwise the mode with strictly more rules, legacy + IPv6 legacy against nft + IPv6 nft.
 * 3. A tie (including none at all) is nft, the default of current distributions.
 */
export function chooseIptablesMode(counts: RuleCounts): IptablesMode {
  if (counts.kubeletHint !== undefined) return counts.kubeletHint;
  return counts.legacy > counts.nft ? 'legacy' : 'nft';
}

/** Rules in `*-save` output: upstream counts lines that start with `-` (chain declarations start with `:`). */
export function countRules(saveOutput: string): number {
  let n = 0;
  for (const line of saveOutput.split('\n')) if (line.startsWith('-')) n++;
  return n;
}

const KUBELET_CHAINS = /^:(KUBE-IPTABLES-HINT|KUBE-KUBELET-CANARY)/m;

export function hasKubeletChains(saveOutput: string): boolean {
  return KUBELET_CHAINS.test(saveOutput);
}

/** Runs a save tool and resolves to its stdout; rejects if the tool is missing or fails. */
export type SaveRunner = (command: string, args: readonly string[]) => Promise<string>;

export interface ModeDecision {
  readonly mode: IptablesMode;
  /** One line for the start-up log: why this mode. */
  readonly reason: string;
}

/**
 * Decides the mode at agent start: the override if set, else upstream's detection (see chooseIptablesMode).
 * Save tools that are missing or fail count as no rules, as in upstream's `|| true`; they are named in the
 * reason. The order follows upstream: nft's mangle table first (cheap, and the common case), then the whole
 * legacy rule set (`-t mangle` is avoided there because legacy save would create the table), and only then
 * the whole nft rule set for the counts.
 */
export async function detectIptablesMode(override: IptablesMode | undefined, run: SaveRunner = runSaveTool): Promise<ModeDecision> {
  if (override !== undefined) return { mode: override, reason: `${IPTABLES_MODE_ENV}=${override}` };

  const failures: string[] = [];
  const save = async (command: string, args: readonly string[] = []): Promise<string> => {
    try {
      return await run(command, args);
    } catch (e) {
      failures.push(`${command}: ${whyUnavailable(e)}`);
      return '';
    }
  };
  const unavailable = () => (failures.length > 0 ? `; unavailable: ${failures.join(', ')}` : '');
  const hintReason = (mode: IptablesMode) =>
    `kubelet's KUBE-IPTABLES-HINT/KUBE-KUBELET-CANARY chain found with iptables-${mode}`;

  // Joined with a newline so a last line without one cannot merge with the next output's first line.
  const nftMangle = [await save('iptables-nft-save', ['-t', 'mangle']), await save('ip6tables-nft-save', ['-t', 'mangle'])].join('\n');
  if (hasKubeletChains(nftMangle)) return { mode: 'nft', reason: hintReason('nft') };

  const legacy = [await save('iptables-legacy-save'), await save('ip6tables-legacy-save')].join('\n');
  if (hasKubeletChains(legacy)) return { mode: 'legacy', reason: hintReason('legacy') };

  const nft = [await save('iptables-nft-save'), await save('ip6tables-nft-save')].join('\n');
  const counts = { legacy: countRules(legacy), nft: countRules(nft) };
  const mode = chooseIptablesMode(counts);
  const verdict = counts.legacy === counts.nft ? 'a tie defaults to nft' : `more ${mode} rules`;
  return {
    mode,
    reason: `no kubelet chains; ${counts.legacy} legacy vs ${counts.nft} nft rules, ${verdict}${unavailable()}`,
  };
}

/** Default runner. Save output can be tens of MB on big clusters, hence the buffer; a hung tool must not block start. */
export const runSaveTool: SaveRunner = async (command, args) =>
  (await runTool({ file: command, args, pkg: 'iptables', timeoutMs: 60_000 })).stdout;

/** A failed save tool in a few words, for the reason line. */
function whyUnavailable(e: unknown): string {
  if (e instanceof ToolError) return e.code === 'TOOL_MISSING' ? 'not installed' : e.reason;
  return e instanceof Error ? e.message : String(e);
}
