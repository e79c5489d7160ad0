import { type ServiceFragment, countLines } from './fragment.js';
import type { LiveRules } from './live-state.js';
import { isPerServiceChain } from './names.js';
import type { IptablesOptions } from './options.js';
import { BUILTIN_JUMPS, FIXED_CHAINS, KUBE_SERVICES, NODEPORTS_TAIL_RULE, type Table, fixedRules } from './skeleton.js';

/**
 * An iptables-restore input (for `--noflush`), with the counts that metrics and benchmarks report. The text
 * is kept as its pieces (mostly the cached fragments themselves) and streamed to the tool: a full sync at
 * 10,000 Services is 31 MB, which would otherwise be copied once more into one string.
 */
export interface RestorePayload {
  readonly kind: 'full' | 'partial';
  readonly chunks: readonly string[];
  /** Length of the text in characters (= bytes: the payload is ASCII). */
  readonly length: number;
  /** The whole text, joined on first use (tests, printing small payloads, error reports). */
  readonly text: string;
  readonly stats: PayloadStats;
}

/** The pieces regrouped into strings of about `size` characters: few writes, and never the whole text at once. */
export function* batches(chunks: readonly string[], size = 1 << 20): Generator<string> {
  let group: string[] = [];
  let length = 0;
  for (const c of chunks) {
    group.push(c);
    length += c.length;
    if (length >= size) {
      yield group.join('');
      group = [];
      length = 0;
    }
  }
  if (group.length > 0) yield group.join('');
}

function payloadOf(kind: 'full' | 'partial', chunks: string[], stats: PayloadStats): RestorePayload {
  let length = 0;
  for (const c of chunks) length += c.length;
  let joined: string | undefined;
  return {
    kind,
    chunks,
    length,
    get text(): string {
      joined ??= chunks.join('');
      return joined;
    },
    stats,
  };
}

export interface PayloadStats {
  /** `-A`/`-I` lines written per table. */
  readonly natRulesWritten: number;
  readonly filterRulesWritten: number;
  readonly chainsWritten: number;
  readonly chainsDeleted: number;
  /** Rules the whole ruleset holds after this payload (nat and filter), as kube-proxy's iptables_total. */
  readonly natRulesTotal: number;
  readonly filterRulesTotal: number;
}

const chainLine = (name: string): string => `:${name} - [0:0]\n`;

/**
 * A full sync: every fixed chain and every Service's chains declared and rewritten, stale per-service chains
 * (present in `live`, no longer wanted) flushed and deleted, and missing built-in jumps prepended. Chains it
 * does not declare, and so other agents' rules, are untouched under `--noflush`.
 */
export function planFull(fragments: readonly ServiceFragment[], opts: IptablesOptions, live: LiveRules): RestorePayload {
  const filter: string[] = ['*filter\n'];
  const nat: string[] = ['*nat\n'];
  for (const name of FIXED_CHAINS.filter) filter.push(chainLine(name));
  for (const name of FIXED_CHAINS.nat) nat.push(chainLine(name));
  const wanted = new Set<string>();
  for (const f of fragments) {
    for (const name of f.natChains.keys()) {
      wanted.add(name);
      nat.push(chainLine(name));
    }
  }
  const stale = [...(live.chains.get('nat') ?? [])].filter((c) => isPerServiceChain(c) && !wanted.has(c)).sort();
  for (const name of stale) nat.push(chainLine(name));

  const filterFixed = fixedRules('filter', opts);
  for (const rule of filterFixed) filter.push(`${rule}\n`);
  let filterServiceRules = 0;
  for (const f of fragments) {
    for (const rule of f.filterServiceRules) filter.push(`-A ${KUBE_SERVICES} ${rule}\n`);
    filterServiceRules += f.filterServiceRules.length;
  }
  const natFixed = fixedRules('nat', opts);
  for (const rule of natFixed) nat.push(`${rule}\n`);
  let natRules = natFixed.length + 1;
  for (const f of fragments) for (const rule of f.natServiceRules) nat.push(`-A ${KUBE_SERVICES} ${rule}\n`);
  nat.push(`${NODEPORTS_TAIL_RULE}\n`);
  for (const f of fragments) {
    for (const body of f.natChains.values()) nat.push(body);
    natRules += f.natRuleCount;
  }
  for (const name of stale) nat.push(`-X ${name}\n`);

  const filterJumps = missingJumps('filter', live);
  const natJumps = missingJumps('nat', live);
  filter.push(...filterJumps, 'COMMIT\n');
  nat.push(...natJumps, 'COMMIT\n');
  const mangle = `*mangle\n${chainLine(FIXED_CHAINS.mangle[0]!)}COMMIT\n`;
  const chunks = filter;
  for (const c of nat) chunks.push(c);
  chunks.push(mangle);
  const filterTotal = filterFixed.length + filterServiceRules;
  return payloadOf('full', chunks, {
      natRulesWritten: natRules + natJumps.length,
      filterRulesWritten: filterTotal + filterJumps.length,
      chainsWritten: wanted.size + FIXED_CHAINS.filter.length + FIXED_CHAINS.nat.length + FIXED_CHAINS.mangle.length,
      chainsDeleted: stale.length,
      natRulesTotal: natRules,
      filterRulesTotal: filterTotal,
  });
}

/** `-I CHAIN 1 …` lines for the built-in jumps `live` lacks, in kube-proxy's prepend order. */
function missingJumps(table: Table, live: LiveRules): string[] {
  const present = live.rules.get(table);
  return BUILTIN_JUMPS.filter((j) => j.table === table && !present?.has(j.rule)).map(
    (j) => `-I ${j.chain} 1 ${j.rule.slice(`-A ${j.chain} `.length)}\n`,
  );
}

/**
 * A partial sync: only what changed between the applied and the wanted fragments of the changed Services.
 * Unlike kube-proxy, the shared KUBE-SERVICES chains are not rewritten: their rules are deleted (`-D`) and
 * inserted at the top (`-I … 1`, so the NodePorts rule stays last) one by one. Order in those chains does
 * not matter because no two Services share a ClusterIP, port and protocol. If the kernel does not hold what
 * we believe, `-D` fails, the restore is rejected atomically, and the caller falls back to a full sync.
 */
export function planPartial(
  applied: ReadonlyMap<string, ServiceFragment>,
  wanted: ReadonlyMap<string, ServiceFragment>,
  changed: Iterable<string>,
  totals: { natRulesTotal: number; filterRulesTotal: number },
): RestorePayload | undefined {
  const natDecl: string[] = [];
  const natEdits: string[] = [];
  const natBodies: string[] = [];
  const natDeletes: string[] = [];
  const filterEdits: string[] = [];
  let natRules = 0;
  let filterRules = 0;
  for (const key of changed) {
    const before = applied.get(key);
    const after = wanted.get(key);
    if (before === after) continue;
    for (const [name, body] of after?.natChains ?? []) {
      if (before?.natChains.get(name) === body) continue;
      natDecl.push(chainLine(name));
      natBodies.push(body);
      natRules += countLines(body);
    }
    for (const name of before?.natChains.keys() ?? []) {
      if (after?.natChains.has(name)) continue;
      natDecl.push(chainLine(name));
      natDeletes.push(`-X ${name}\n`);
    }
    natRules += diffSharedChain(before?.natServiceRules, after?.natServiceRules, natEdits);
    filterRules += diffSharedChain(before?.filterServiceRules, after?.filterServiceRules, filterEdits);
  }
  if (natDecl.length + natEdits.length + filterEdits.length === 0) return undefined;
  const parts: string[] = [];
  if (filterEdits.length > 0) parts.push('*filter\n', ...filterEdits, 'COMMIT\n');
  if (natDecl.length + natEdits.length > 0) parts.push('*nat\n', ...natDecl, ...natEdits, ...natBodies, ...natDeletes, 'COMMIT\n');
  return payloadOf('partial', parts, {
    natRulesWritten: natRules,
    filterRulesWritten: filterRules,
    chainsWritten: natDecl.length - natDeletes.length,
    chainsDeleted: natDeletes.length,
    ...totals,
  });
}

function diffSharedChain(before: readonly string[] = [], after: readonly string[] = [], out: string[]): number {
  const old = new Set(before);
  const now = new Set(after);
  let written = 0;
  for (const rule of before) if (!now.has(rule)) out.push(`-D ${KUBE_SERVICES} ${rule}\n`);
  for (const rule of after) {
    if (old.has(rule)) continue;
    out.push(`-I ${KUBE_SERVICES} 1 ${rule}\n`);
    written++;
  }
  return written;
}
