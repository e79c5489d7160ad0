import { Readable } from 'node:stream';
import { ExecaError, execa } from 'execa';
import type { IPFamily } from '../../model/ip.js';
import { ApplyError, describe, toolOutput } from '../iptables/apply.js';
import type { LiveTable } from './compiler.js';
import { TABLE_NAME, familySyntax } from './options.js';
import { SERVICES, SERVICE_IPS } from './skeleton.js';

/**
 * Runs one transaction: the input is streamed to `nft -f -`, which applies all of it or nothing. Throws
 * ApplyError with nft's message and the input lines it points at.
 */
export async function nftApply(input: Iterable<string>): Promise<void> {
  try {
    await execa('nft', ['-f', '-'], { input: Readable.from(input, { objectMode: false }), timeout: 600_000 });
  } catch (e) {
    const output = toolOutput(e);
    throw new ApplyError(`nft -f failed: ${describe(e, 'nftables')}`, output, nftOffendingLines([...input].join(''), output));
  }
}

/** nft names failing input lines as `/dev/stdin:LINE:COLUMNS: Error: …`; each is quoted once. */
export function nftOffendingLines(input: string, output: string): string[] {
  const lines = input.split('\n');
  const seen = new Set<number>();
  for (const m of output.matchAll(/^\/dev\/stdin:(\d+):/gm)) seen.add(Number(m[1]));
  return [...seen].sort((a, b) => a - b).map((n) => `${n}: ${lines[n - 1] ?? ''}`);
}

interface NftJson {
  readonly nftables?: readonly Record<string, { readonly table?: string; readonly name?: string } | undefined>[];
}

async function listNames(kind: 'chains' | 'sets', family: IPFamily): Promise<string[]> {
  const { table } = familySyntax(family);
  let stdout: string;
  try {
    ({ stdout } = await execa('nft', ['-j', 'list', kind, table], { timeout: 60_000, maxBuffer: 256 * 1024 * 1024 }));
  } catch (e) {
    throw new ApplyError(`nft -j list ${kind} ${table} failed: ${describe(e, 'nftables')}`, toolOutput(e), []);
  }
  const parsed = JSON.parse(stdout) as NftJson;
  const singular = kind === 'chains' ? 'chain' : 'set';
  const out: string[] = [];
  for (const item of parsed.nftables ?? []) {
    const obj = item[singular];
    if (obj?.table === TABLE_NAME && obj.name !== undefined) out.push(obj.name);
  }
  return out;
}

/** The names of our table's chains and sets (not maps: those are all fixed); empty without the table. */
export async function readLiveTable(family: IPFamily): Promise<LiveTable> {
  const [chains, sets] = await Promise.all([listNames('chains', family), listNames('sets', family)]);
  return { chains, sets };
}

/**
 * True if our table is there and its `services` chain still dispatches through @service-ips: a `flush
 * ruleset` or `flush table` from outside removes one or the other. Lists one chain, not the table's elements.
 */
export async function dispatchPresent(family: IPFamily): Promise<boolean> {
  const { qualified } = familySyntax(family);
  try {
    const { stdout } = await execa('nft', ['list', 'chain', ...qualified.split(' '), SERVICES], { timeout: 30_000 });
    return stdout.includes(`@${SERVICE_IPS}`);
  } catch (e) {
    // Exit 1: no such table or chain. Anything else (no nft at all) is an error worth a log line.
    if (e instanceof ExecaError && e.exitCode === 1) return false;
    throw new ApplyError(`nft list chain ${qualified} ${SERVICES} failed: ${describe(e, 'nftables')}`, toolOutput(e), []);
  }
}
