// iptables-save, iptables-restore and iptables (-S), for either family and either iptables mode.
import type { IPFamily } from '../model/ip.js';
import type { IptablesMode } from './iptables-mode.js';
import { type Tool, defineTool } from './tool.js';
import { linesAt, probeTool, runTool } from './exec.js';

/** The binaries of one family and mode (legacy or nft; see iptables-mode.ts); the plain names follow the system default. */
export interface IptablesTools {
  readonly save: string;
  readonly restore: string;
  readonly iptables: string;
  readonly family: IPFamily;
}

export function defaultIptablesTools(family: IPFamily): IptablesTools {
  return family === 'IPv4'
    ? { save: 'iptables-save', restore: 'iptables-restore', iptables: 'iptables', family }
    : { save: 'ip6tables-save', restore: 'ip6tables-restore', iptables: 'ip6tables', family };
}

/** Wait up to 5 s for the xtables lock, polling every 100 ms, as kube-proxy does: other agents hold it too. */
const WAIT_ARGS = ['-w', '5', '-W', '100000'];

const PKG = 'iptables';

/** The raw `iptables-save` text of all tables (tens of MB at 10,000 Services). */
export async function saveAll(tools: IptablesTools): Promise<string> {
  return (await runTool({ file: tools.save, args: [], pkg: PKG, timeoutMs: 120_000, what: tools.save })).stdout;
}

/**
 * `iptables-restore --noflush --counters`: chains the input does not declare (everyone else's) stay as they are.
 * Each COMMIT is one atomic transaction.
 */
export function restoreTool(tools: IptablesTools): Tool {
  const name = tools.family === 'IPv4' ? 'iptables-restore' : 'ip6tables-restore';
  return defineTool({
    name,
    label: `${name} --noflush`,
    file: tools.restore,
    args: [...WAIT_ARGS, '--noflush', '--counters'],
    pkg: PKG,
    timeoutMs: 600_000,
    what: tools.restore,
    offendingLines: restoreOffendingLines,
  });
}

/** True if `chain` exists in `table` (`iptables -S CHAIN` lists one chain without dumping the table). */
export async function chainExists(tools: IptablesTools, table: string, chain: string): Promise<boolean> {
  // Exit 1 is how a missing chain (or table) shows; its message varies ("No chain…", nft's "incompatible").
  const args = [...WAIT_ARGS, '-t', table, '-S', chain];
  return (await probeTool({ file: tools.iptables, args, pkg: PKG, timeoutMs: 30_000, what: `${tools.iptables} -t ${table} -S ${chain}` })) !== undefined;
}

/** iptables-restore names the failing input line ("line 5 failed", "Error occurred at line: 5"): it and its neighbours. */
export function restoreOffendingLines(input: string, output: string): string[] {
  const match = /line:? (\d+)/.exec(output);
  if (!match) return [];
  const n = Number(match[1]);
  const count = input.split('\n').length;
  const around: number[] = [];
  for (let i = Math.max(1, n - 1); i <= Math.min(count, n + 1); i++) around.push(i);
  return linesAt(input, around);
}

/** Explicit binaries (`iptables-nft-restore`, ...), so the image's update-alternatives setting never matters. */
export function iptablesCommands(mode: IptablesMode, family: IPFamily): IptablesTools {
  const base = family === 'IPv4' ? 'iptables' : 'ip6tables';
  return { save: `${base}-${mode}-save`, restore: `${base}-${mode}-restore`, iptables: `${base}-${mode}`, family };
}
