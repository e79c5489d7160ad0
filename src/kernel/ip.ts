// ip (iproute2): links and addresses.
import type { IPFamily } from '../model/ip.js';
import { linesAt, probeTool, runTool } from './exec.js';
import { type Tool, defineTool } from './tool.js';

const PKG = 'iproute2';
const TIMEOUT_MS = 120_000;

/** `ip -batch -`: one process for any number of address changes. */
export const IP_BATCH: Tool = defineTool({
  name: 'ip',
  label: 'ip -batch -',
  file: 'ip',
  args: ['-batch', '-'],
  pkg: PKG,
  timeoutMs: TIMEOUT_MS,
  what: 'ip -batch',
  // ip names the line: "Command failed -:3".
  offendingLines: (input, output) => linesAt(input, [...output.matchAll(/-:(\d+)/g)].map((m) => Number(m[1]))),
});

/** `ip link add NAME type dummy`, as a plan step; a device that exists already is fine. */
export function addDummyLinkTool(name: string): Tool {
  const label = `ip link add ${name} type dummy`;
  return defineTool({ name: 'ip', label, file: 'ip', args: ['link', 'add', name, 'type', 'dummy'], pkg: PKG, timeoutMs: TIMEOUT_MS, alreadyDone: /File exists/ });
}

/** `ip link del NAME`, as a plan step. */
export function deleteLinkTool(name: string): Tool {
  return defineTool({ name: 'ip', label: `ip link del ${name}`, file: 'ip', args: ['link', 'del', name], pkg: PKG, timeoutMs: TIMEOUT_MS });
}

/**
 * The addresses of one family on a device, or undefined when the device does not exist. A missing `ip` tool is
 * an error, never "no device".
 */
export async function deviceAddresses(device: string, family: IPFamily): Promise<Set<string> | undefined> {
  // `ip link show` exits 1 for a missing device.
  if ((await probeTool({ file: 'ip', args: ['link', 'show', device], pkg: PKG, timeoutMs: TIMEOUT_MS })) === undefined) return undefined;
  const args = ['-o', family === 'IPv4' ? '-4' : '-6', 'address', 'show', 'dev', device];
  const { stdout } = await runTool({ file: 'ip', args, pkg: PKG, timeoutMs: TIMEOUT_MS, what: `ip address show dev ${device}` });
  const out = new Set<string>();
  for (const m of stdout.matchAll(/\binet6? ([^/\s]+)\//g)) out.add(m[1]!);
  return out;
}

/** Whether a device exists (`ip link show` exits 1 for a missing one). */
export async function deviceExists(device: string): Promise<boolean> {
  return (await probeTool({ file: 'ip', args: ['link', 'show', device], pkg: PKG, timeoutMs: TIMEOUT_MS })) !== undefined;
}

/** The source address this namespace picks for a connection to `destination` (`ip route get`), if it routes there. */
export async function routeSource(destination: string): Promise<string | undefined> {
  // "Network is unreachable" is an answer (no source), not a failure.
  const r = await runTool({ file: 'ip', args: ['-o', 'route', 'get', destination], pkg: PKG, timeoutMs: TIMEOUT_MS, okExitCodes: 'any' });
  return r.exitCode === 0 ? /\bsrc (\S+)/.exec(r.stdout)?.[1] : undefined;
}
