import { readFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { ExecaError, execa } from 'execa';
import type { IPFamily } from '../../model/ip.js';
import { type LiveRules, parseIptablesSave } from './live-state.js';
import { batches } from './payload.js';
import { FIXED_CHAINS, KUBE_PROXY_CANARY, type Table } from './skeleton.js';
import type { ApplyFailure } from '../../sync/backend.js';

/** A restore the kernel (or the tool) refused, with the tool's words and the input lines it pointed at. */
export class ApplyError extends Error {
  constructor(
    message: string,
    readonly toolOutput: string,
    readonly offendingLines: readonly string[],
  ) {
    super(message);
    this.name = 'ApplyError';
  }
}

/** The sync loop's view of a failed apply, or undefined for any other error (both backends throw ApplyError). */
export function applyFailureOf(e: unknown): ApplyFailure | undefined {
  return e instanceof ApplyError ? { message: e.message, toolOutput: e.toolOutput, offendingLines: e.offendingLines } : undefined;
}

/** The binaries of one family and mode (legacy or nft; see mode.ts); the plain names follow the system default. */
export interface IptablesTools {
  readonly save: string;
  readonly restore: string;
  readonly iptables: string;
}

export function defaultIptablesTools(family: IPFamily): IptablesTools {
  return family === 'IPv4'
    ? { save: 'iptables-save', restore: 'iptables-restore', iptables: 'iptables' }
    : { save: 'ip6tables-save', restore: 'ip6tables-restore', iptables: 'ip6tables' };
}

/** Wait up to 5 s for the xtables lock, polling every 100 ms, as kube-proxy does: other agents hold it too. */
const WAIT_ARGS = ['-w', '5', '-W', '100000'];

/** The raw `iptables-save` text of all tables (tens of MB at 10,000 Services); throws ApplyError. */
export async function saveAll(family: IPFamily, tools = defaultIptablesTools(family)): Promise<string> {
  const { save } = tools;
  try {
    const { stdout } = await execa(save, [], { timeout: 120_000, maxBuffer: 1024 * 1024 * 1024 });
    return stdout;
  } catch (e) {
    throw new ApplyError(`${save} failed: ${describe(e)}`, toolOutput(e), []);
  }
}

export async function readLiveRules(family: IPFamily, tools = defaultIptablesTools(family)): Promise<LiveRules> {
  return parseIptablesSave(await saveAll(family, tools));
}

/**
 * Applies a payload with `--noflush`, so chains it does not declare (everyone else's) stay as they are.
 * A payload given as pieces is streamed to the tool's stdin without being joined first.
 */
export async function restore(payload: string | Iterable<string>, family: IPFamily, tools = defaultIptablesTools(family)): Promise<void> {
  const { restore: tool } = tools;
  try {
    await execa(tool, [...WAIT_ARGS, '--noflush', '--counters'], { input: streamed(payload), timeout: 600_000 });
  } catch (e) {
    const output = toolOutput(e);
    const text = typeof payload === 'string' ? payload : [...payload].join('');
    throw new ApplyError(`${tool} failed: ${describe(e)}`, output, offendingLines(text, output));
  }
}

/** A tool's stdin: a string as it is, pieces regrouped into batches and streamed without being joined. */
function streamed(input: string | Iterable<string>): string | Readable {
  return typeof input === 'string' ? input : Readable.from(batches(input), { objectMode: false });
}

/**
 * Applies an `ipset restore` input; `-exist` makes creates, adds and deletes idempotent. Pieces are streamed as
 * in `restore`. Throws ApplyError.
 */
export async function restoreIpset(input: string | Iterable<string>): Promise<void> {
  if (input === '' || (Array.isArray(input) && input.length === 0)) return;
  try {
    await execa('ipset', ['restore', '-exist'], { input: streamed(input), timeout: 120_000 });
  } catch (e) {
    const output = toolOutput(e);
    const text = typeof input === 'string' ? input : [...input].join('');
    throw new ApplyError(`ipset restore failed: ${describe(e, 'ipset')}`, output, offendingLines(text, output));
  }
}

/** The names of all ipsets (`ipset list -n`); undefined when the ipset tool is not installed. */
export async function listIpsets(): Promise<string[] | undefined> {
  try {
    const { stdout } = await execa('ipset', ['list', '-n'], { timeout: 30_000 });
    return stdout.split('\n').filter((l) => l !== '');
  } catch (e) {
    if (e instanceof ExecaError && e.code === 'ENOENT') return undefined;
    throw new ApplyError(`ipset list -n failed: ${describe(e, 'ipset')}`, toolOutput(e), []);
  }
}

export async function destroyIpset(name: string): Promise<void> {
  try {
    await execa('ipset', ['destroy', name], { timeout: 30_000 });
  } catch (e) {
    throw new ApplyError(`ipset destroy ${name} failed: ${describe(e, 'ipset')}`, toolOutput(e), []);
  }
}

/** True if `chain` exists in `table` (`iptables -S CHAIN` lists one chain without dumping the table). */
export async function chainExists(tools: IptablesTools, table: string, chain: string): Promise<boolean> {
  try {
    await execa(tools.iptables, [...WAIT_ARGS, '-t', table, '-S', chain], { timeout: 30_000 });
    return true;
  } catch (e) {
    // Exit 1 is how a missing chain (or table) shows; its message varies ("No chain…", nft's "incompatible").
    // As kube-proxy's ChainExists, that means "not there"; only a tool that cannot run is an error.
    if (e instanceof ExecaError && e.exitCode === 1) return false;
    throw new ApplyError(`${tools.iptables} -t ${table} -S ${chain} failed: ${describe(e)}`, toolOutput(e), []);
  }
}

/** False if our canary chain is missing from any table: someone flushed them (both backends declare it). */
export async function canaryChainsPresent(tools: IptablesTools): Promise<boolean> {
  const tables = Object.keys(FIXED_CHAINS) as Table[];
  const present = await Promise.all(tables.map((t) => chainExists(tools, t, KUBE_PROXY_CANARY)));
  return present.every(Boolean);
}

/** iptables-restore names the failing input line ("line 5 failed", "Error occurred at line: 5"). */
export function offendingLines(payload: string, output: string): string[] {
  const match = /line:? (\d+)/.exec(output);
  if (!match) return [];
  const n = Number(match[1]);
  const lines = payload.split('\n');
  const out: string[] = [];
  for (let i = Math.max(1, n - 1); i <= Math.min(lines.length, n + 1); i++) out.push(`${i}: ${lines[i - 1]}`);
  return out;
}

/** kube-proxy installs the ctstate INVALID drop only when the kernel is not in "be liberal" TCP mode. */
export async function conntrackTcpBeLiberal(): Promise<boolean> {
  try {
    return (await readFile('/proc/sys/net/netfilter/nf_conntrack_tcp_be_liberal', 'utf8')).trim() !== '0';
  } catch {
    return false;
  }
}

/** A failed tool's stderr, trimmed; '' for other errors. */
export function toolOutput(e: unknown): string {
  return e instanceof ExecaError ? String(e.stderr ?? '').trim() : '';
}

/** Why a tool failed, in a few words (exit code, timeout, or which package to install). */
export function describe(e: unknown, pkg = 'iptables'): string {
  if (e instanceof ExecaError) {
    const r = e;
    if (r.code === 'ENOENT') return `command not found (install the ${pkg} package)`;
    if (r.timedOut) return 'timed out';
    return r.exitCode !== undefined ? `exit code ${r.exitCode}` : r.shortMessage;
  }
  return e instanceof Error ? e.message : String(e);
}
