// ipset: restore (set contents), list, save and destroy.
import { ToolError, runTool } from './exec.js';
import { type Tool, defineTool } from './tool.js';
import { restoreOffendingLines } from './iptables.js';

const PKG = 'ipset';

/** `ipset restore -exist`: creates, adds and deletes are idempotent. Stops at the first failing line. */
export const IPSET_RESTORE: Tool = defineTool({
  name: 'ipset',
  label: 'ipset restore -exist',
  file: 'ipset',
  args: ['restore', '-exist'],
  pkg: PKG,
  timeoutMs: 120_000,
  what: 'ipset restore',
  // ipset names the line the way iptables-restore does ("Error in line 3").
  offendingLines: restoreOffendingLines,
});

/** `ipset destroy NAME`, as a plan step. */
export function destroyTool(name: string): Tool {
  return defineTool({ name: 'ipset', label: `ipset destroy ${name}`, file: 'ipset', args: ['destroy', name], pkg: PKG, timeoutMs: 30_000 });
}

/** The names of all ipsets (`ipset list -n`); undefined when the ipset tool is not installed. */
export async function listIpsets(): Promise<string[] | undefined> {
  try {
    const { stdout } = await runTool({ file: 'ipset', args: ['list', '-n'], pkg: PKG, timeoutMs: 30_000 });
    return stdout.split('\n').filter((l) => l !== '');
  } catch (e) {
    if (e instanceof ToolError && e.code === 'TOOL_MISSING') return undefined;
    throw e;
  }
}

/** `ipset save`: every set's create and add lines. */
export async function saveIpsets(): Promise<string> {
  return (await runTool({ file: 'ipset', args: ['save'], pkg: PKG, timeoutMs: 120_000 })).stdout;
}
