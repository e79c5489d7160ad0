// nft: transactions (`nft -f -`) and the few listings a sync needs.
import type { IPFamily } from '../model/ip.js';
import { ToolError, linesAt, probeTool, runTool } from './exec.js';
import { nftFamily } from './syntax/nft.js';
import { type Tool, defineTool } from './tool.js';

const PKG = 'nftables';

/** `nft -f -`: one transaction, applied whole or not at all. */
export const NFT_APPLY: Tool = defineTool({
  name: 'nft',
  label: 'nft -f -',
  file: 'nft',
  args: ['-f', '-'],
  pkg: PKG,
  timeoutMs: 600_000,
  what: 'nft -f',
  offendingLines: nftOffendingLines,
});

/** nft names failing input lines as `/dev/stdin:LINE:COLUMNS: Error: …`; each is quoted once. */
export function nftOffendingLines(input: string, output: string): string[] {
  return linesAt(input, [...output.matchAll(/^\/dev\/stdin:(\d+):/gm)].map((m) => Number(m[1])));
}


/** What `nft -j list` prints: a schema marker, then objects keyed by their kind. */
interface NftJson {
  readonly nftables?: readonly Record<string, { readonly table?: string; readonly name?: string; readonly json_schema_version?: number } | undefined>[];
}

/**
 * The names of the chains or sets of one table (`nft -t -j list chains ip`); empty when the table does not exist.
 * Terse: without -t nft 1.0.6 fetches every element of every set first (5-7 s at 10,000 Services, even to list
 * the other family's sets).
 */
export async function listNames(kind: 'chains' | 'sets', family: IPFamily, table: string): Promise<string[]> {
  const args = ['-t', '-j', 'list', kind, nftFamily(family)];
  const { stdout } = await runTool({ file: 'nft', args, pkg: PKG, timeoutMs: 60_000, maxBuffer: 256 * 1024 * 1024 });
  const parsed = parseJson(stdout, `nft ${args.join(' ')}`);
  const singular = kind === 'chains' ? 'chain' : 'set';
  const out: string[] = [];
  for (const item of parsed.nftables ?? []) {
    const obj = item[singular];
    if (obj?.table === table && obj.name !== undefined) out.push(obj.name);
  }
  return out;
}

/** Schema 1 is what every nft release with `-j` prints; anything else is read as unreadable, not as empty. */
function parseJson(stdout: string, command: string): NftJson {
  let parsed: unknown;
  try {
    parsed = JSON.parse(stdout);
  } catch (e) {
    throw new ToolError({ code: 'UNREADABLE_OUTPUT', what: command, reason: 'output is not JSON', command, cause: e });
  }
  const items = typeof parsed === 'object' && parsed !== null && 'nftables' in parsed ? parsed.nftables : undefined;
  if (!Array.isArray(items)) throw new ToolError({ code: 'UNREADABLE_OUTPUT', what: command, reason: 'no "nftables" array in its output', command });
  const meta = items.find((i: unknown) => typeof i === 'object' && i !== null && 'metainfo' in i) as { metainfo?: { json_schema_version?: unknown } } | undefined;
  const version = meta?.metainfo?.json_schema_version;
  if (version !== undefined && version !== 1) {
    throw new ToolError({ code: 'UNREADABLE_OUTPUT', what: command, reason: `JSON schema version ${String(version)}, expected 1`, command });
  }
  return parsed as NftJson;
}

/** The tables of this family (`nft list tables ip`); undefined without the nft tool (no table of ours can exist then). */
export async function listTables(family: IPFamily): Promise<string[] | undefined> {
  let stdout: string;
  try {
    ({ stdout } = await runTool({ file: 'nft', args: ['list', 'tables', nftFamily(family)], pkg: PKG, timeoutMs: 30_000 }));
  } catch (e) {
    if (e instanceof ToolError && e.code === 'TOOL_MISSING') return undefined;
    throw e;
  }
  const prefix = `table ${nftFamily(family)} `;
  return stdout.split('\n').map((l) => l.trim()).filter((l) => l.startsWith(prefix)).map((l) => l.slice(prefix.length));
}

/**
 * `nft list ruleset ip|ip6`: every table of the family with its chains, rules, sets and their elements, as text
 * (for `switchboard trace --live`). Not terse: the elements are the point. At 10,000 Services nft 1.0.6 takes
 * seconds to print them.
 */
export async function listRuleset(family: IPFamily): Promise<string> {
  const args = ['list', 'ruleset', nftFamily(family)];
  return (await runTool({ file: 'nft', args, pkg: PKG, timeoutMs: 120_000, maxBuffer: 1024 * 1024 * 1024, what: `nft ${args.join(' ')}` })).stdout;
}
