import {
  appendRule,
  declareChain,
  deleteChain,
  deleteRule,
  groupedByChains,
  insertRule,
  slices,
  transaction,
} from '../../kernel/syntax/iptables-restore.js';
import type { LiveRules } from '../../kernel/syntax/iptables-save.js';
import {
  BUILTIN_JUMPS,
  FIREWALL_JUMPS,
  FIXED_CHAINS,
  countLines,
  fixedChains,
  fixedRules,
  isPerServiceChain,
  missingJumps,
  splitSharedRule,
} from '../shared/iptables-fixed.js';
import type { FragmentChange } from '../shared/fragment-ledger.js';
import type { ServiceFragment } from './fragment.js';
import { chainSaveForm } from './save-form.js';
import { type IptablesOptions, fixedRulesOptions, tailRules } from './options.js';

/**
 * An iptables-restore input (for `--noflush`), with the counts that metrics and benchmarks report. The text
 * is kept as its pieces (mostly the cached fragments themselves) and streamed to the tool: a full sync at
 * 10,000 Services is 31 MB, which would otherwise be copied once more into one string.
 */
export interface RestorePayload {
  readonly kind: 'full' | 'partial';
  /** The text in pieces, generated afresh on each iteration (a full sync renders its endpoint chains as it goes). */
  readonly chunks: Iterable<string>;
  /** Length of the text in characters (= bytes: the payload is ASCII); counted on first use. */
  readonly length: number;
  /** The whole text, joined on first use (tests, printing small payloads, error reports). */
  readonly text: string;
  readonly stats: PayloadStats;
  /**
   * One COMMIT: iptables-restore applies it whole or not at all. Each COMMIT (each table, each batch) is its
   * own transaction, so a failure in a later one leaves the earlier ones applied.
   */
  readonly atomic: boolean;
}

function payloadOf(kind: 'full' | 'partial', chunks: Iterable<string>, stats: PayloadStats, atomic: boolean): RestorePayload {
  let length: number | undefined;
  let joined: string | undefined;
  return {
    kind,
    chunks,
    get length(): number {
      if (length === undefined) {
        length = 0;
        for (const c of chunks) length += c.length;
      }
      return length;
    },
    get text(): string {
      joined ??= [...chunks].join('');
      return joined;
    },
    stats,
    atomic,
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

/**
 * A full sync: every fixed chain and every Service's chains declared and rewritten, stale per-service chains
 * (present in `live`, no longer wanted) flushed and deleted, and missing built-in jumps prepended. Chains it
 * does not declare, and so other agents' rules, are untouched under `--noflush`.
 */
export function planFull(fragments: readonly ServiceFragment[], opts: IptablesOptions, live: LiveRules): RestorePayload {
  const liveNat = live.chains.get('nat') ?? new Set<string>();
  // Chain names are unique across Services (their hash covers namespace, name and port), so counting suffices;
  // a set of the wanted names (110,000 at 10,000 x 10) is built only from the live ones, to find the stale.
  let wanted = 0;
  for (const f of fragments) wanted += f.natChains.size;
  const stale = staleChains(fragments, liveNat);
  const held = heldVerbatim(fragments, opts, live);
  /** The chains this sync writes: all wanted ones except those the kernel already holds verbatim. */
  const written = (f: ServiceFragment): string[] | IterableIterator<string> =>
    held.size === 0 ? f.natChains.keys() : [...f.natChains.keys()].filter((name) => !held.has(name));

  const fixedOpts = fixedRulesOptions(opts);
  const filterChains = fixedChains('filter', fixedOpts);
  const filterFixed = fixedRules('filter', fixedOpts);
  let filterServiceRules = 0;
  for (const f of fragments) filterServiceRules += f.filterServiceRules.length;
  const filterJumps = missingJumps('filter', live, fixedOpts.localhostNodePorts ? [...BUILTIN_JUMPS, ...FIREWALL_JUMPS] : BUILTIN_JUMPS);
  const natFixed = fixedRules('nat', fixedOpts);
  const natJumps = missingJumps('nat', live);
  const tail = tailRules(opts);
  let natRules = natFixed.length + tail.length;
  for (const f of fragments) natRules += f.natRuleCount;
  /** The fixed nat chains' rules and the shared chains, KUBE-SERVICES last jumping to the NodePorts chain. */
  function* natShared(): Generator<string> {
    for (const rule of natFixed) yield `${rule}\n`;
    for (const f of fragments) for (const rule of f.natServiceRules) yield `-A ${rule}\n`;
    for (const rule of tail) yield `${rule}\n`;
  }

  const limit = opts.maxChainsPerTransaction;
  const single = wanted - held.size + stale.length <= limit;
  // Generated on each iteration rather than stored: the pieces of a 10,000-Service sync (endpoint chains
  // rendered from their facts) live only while the restore reads them.
  function* generate(): Generator<string> {
    yield* transaction(
      'filter',
      filterChains.map(declareChain),
      filterFixed.map((rule) => `${rule}\n`),
      (function* () {
        for (const f of fragments) for (const rule of f.filterServiceRules) yield `-A ${rule}\n`;
      })(),
      filterJumps,
    );
    if (single) {
      // All of nat in one transaction, as kube-proxy writes it.
      yield* transaction(
        'nat',
        FIXED_CHAINS.nat.map(declareChain),
        (function* () {
          for (const f of fragments) for (const name of written(f)) yield declareChain(name);
        })(),
        stale.map(declareChain),
        natShared(),
        // Endpoint chains are rendered here, once: by name lookup only when some chains are skipped.
        (function* () {
          for (const f of fragments) {
            if (held.size === 0) yield* f.natChains.values();
            else for (const name of written(f)) yield f.natChains.get(name)!;
          }
        })(),
        stale.map(deleteChain),
        natJumps,
      );
    } else {
      yield* batchedNat(fragments, written, stale, liveNat, natShared, natJumps, limit);
    }
    yield* transaction('mangle', FIXED_CHAINS.mangle.map(declareChain));
  }
  const filterTotal = filterFixed.length + filterServiceRules;
  return payloadOf('full', { [Symbol.iterator]: generate }, {
    natRulesWritten: natRules + natJumps.length,
    filterRulesWritten: filterTotal + filterJumps.length,
    chainsWritten: wanted - held.size + filterChains.length + FIXED_CHAINS.nat.length + FIXED_CHAINS.mangle.length,
    chainsDeleted: stale.length,
    natRulesTotal: natRules,
    filterRulesTotal: filterTotal,
  }, false);
}

/**
 * The nat part of a large full sync, as a sequence of transactions that keeps every Service consistent at
 * every step: (1) fixed chains the kernel lacks, created empty; (2) groups of whole Services, each group
 * declaring (creating or flushing) and filling its chains in one COMMIT, so a Service's SVC chain never
 * points at a half-written endpoint chain; (3) stale chains flushed; (4) the fixed chains and KUBE-SERVICES
 * rewritten, which is the moment new Services appear and deleted ones disappear; (5) stale chains removed.
 * If a later COMMIT fails, the earlier ones stay, and the caller's next full sync finishes the job.
 */
function* batchedNat(
  fragments: readonly ServiceFragment[],
  written: (f: ServiceFragment) => Iterable<string>,
  stale: readonly string[],
  liveNat: ReadonlySet<string>,
  natShared: () => Iterable<string>,
  natJumps: readonly string[],
  limit: number,
): Generator<string> {
  const missingFixed = FIXED_CHAINS.nat.filter((c) => !liveNat.has(c));
  if (missingFixed.length > 0) yield* transaction('nat', missingFixed.map(declareChain));
  const units = (function* () {
    for (const f of fragments) yield { f, names: [...written(f)] };
  })();
  // All of a Service's chains written (none held verbatim): its table in order, without a lookup by name per chain.
  const bodies = (u: { f: ServiceFragment; names: string[] }): Iterable<string> =>
    u.names.length === u.f.natChains.size ? u.f.natChains.values() : u.names.map((name) => u.f.natChains.get(name)!);
  yield* writeGroups(groupedByChains(units, (u) => u.names.length, limit), (u) => u.names.map(declareChain), bodies);
  for (const some of slices(stale, limit)) yield* transaction('nat', some.map(declareChain));
  yield* transaction('nat', FIXED_CHAINS.nat.map(declareChain), natShared(), natJumps);
  for (const some of slices(stale, limit)) yield* transaction('nat', some.map(deleteChain));
}

/** One nat transaction per group: every unit's declarations, then every unit's rules. */
function* writeGroups<T>(groups: Iterable<T[]>, declarations: (unit: T) => Iterable<string>, bodies: (unit: T) => Iterable<string>): Generator<string> {
  for (const group of groups) {
    // Streamed: a group's rules (2,000 chains of them) are rendered while the restore reads them.
    yield* transaction('nat', concat(group.map(declarations)), concat(group.map(bodies)));
  }
}

function* concat(parts: Iterable<Iterable<string>>): Generator<string> {
  for (const part of parts) yield* part;
}

/** Per-service chains `liveNat` holds that no fragment declares, sorted. */
function staleChains(fragments: readonly ServiceFragment[], liveNat: ReadonlySet<string>): string[] {
  const unclaimed = new Set<string>();
  for (const c of liveNat) if (isPerServiceChain(c)) unclaimed.add(c);
  if (unclaimed.size === 0) return [];
  for (const f of fragments) for (const name of f.natChains.keys()) unclaimed.delete(name);
  return [...unclaimed].sort();
}

/**
 * The wanted per-service chains whose rules the kernel already holds exactly (compared in iptables-save's
 * form), which a full sync need not rewrite. A restart onto 10,000 Services thus writes only KUBE-SERVICES
 * and the fixed chains, where rewriting all 110,000 chains took 30 s in nf_tables.
 */
function heldVerbatim(fragments: readonly ServiceFragment[], opts: IptablesOptions, live: LiveRules): Set<string> {
  const held = new Set<string>();
  if (live.serviceChains.size === 0) return held;
  for (const f of fragments) {
    for (const [name, body] of f.natChains) {
      const saved = live.serviceChains.get(name);
      if (saved !== undefined && saved === chainSaveForm(body, opts.family)) held.add(name);
    }
  }
  return held;
}

/**
 * A partial sync: only what changed between the applied and the wanted fragments of the changed Services.
 * Unlike kube-proxy, the shared KUBE-SERVICES chains are not rewritten: their rules are deleted (`-D`) and
 * inserted at the top (`-I … 1`, so the NodePorts rule stays last) one by one. Order in those chains does
 * not matter because no two Services share a ClusterIP, port and protocol. If the kernel does not hold what
 * we believe, `-D` fails, the restore is rejected atomically, and the caller falls back to a full sync.
 * A change declaring more than `limit` chains (a thousand Services created at once) is split like a full
 * sync: whole Services' chains first, then the KUBE-SERVICES edits, then the deletions.
 */
export function planPartial(
  changes: Iterable<FragmentChange<ServiceFragment>>,
  totals: { natRulesTotal: number; filterRulesTotal: number },
  limit = Infinity,
): RestorePayload | undefined {
  /** Per Service: chains to (re)write, as declarations and bodies, and chains to remove. */
  const writes: { names: string[]; bodies: string[] }[] = [];
  const removals: string[] = [];
  const natEdits: string[] = [];
  const filterEdits: string[] = [];
  let declared = 0;
  let natRules = 0;
  let filterRules = 0;
  for (const { before, after } of changes) {
    if (before === after) continue;
    const w = { names: [] as string[], bodies: [] as string[] };
    for (const [name, body] of after?.natChains ?? []) {
      if (before?.natChains.get(name) === body) continue;
      w.names.push(name);
      w.bodies.push(body);
      natRules += countLines(body);
    }
    if (w.names.length > 0) writes.push(w);
    declared += w.names.length;
    for (const name of before?.natChains.keys() ?? []) if (!after?.natChains.has(name)) removals.push(name);
    natRules += diffSharedChain(before?.natServiceRules, after?.natServiceRules, natEdits);
    filterRules += diffSharedChain(before?.filterServiceRules, after?.filterServiceRules, filterEdits);
  }
  declared += removals.length;
  if (declared + natEdits.length + filterEdits.length === 0) return undefined;
  const parts: string[] = [];
  let transactions = 0;
  const add = (text: Iterable<string>): void => {
    for (const t of text) {
      parts.push(t);
      if (t === 'COMMIT\n') transactions++;
    }
  };
  if (filterEdits.length > 0) add(transaction('filter', filterEdits));
  if (declared <= limit) {
    if (declared + natEdits.length > 0) {
      add(
        transaction(
          'nat',
          writes.flatMap((w) => w.names.map(declareChain)),
          removals.map(declareChain),
          natEdits,
          writes.flatMap((w) => w.bodies),
          removals.map(deleteChain),
        ),
      );
    }
  } else {
    add(writeGroups(groupedByChains(writes, (w) => w.names.length, limit), (w) => w.names.map(declareChain), (w) => w.bodies));
    if (natEdits.length > 0) add(transaction('nat', natEdits));
    // All flushed before any is deleted: a removed EXT or FW chain may jump to a removed SVC or EXT chain of
    // another slice (as the full sync's batchedNat does).
    for (const some of slices(removals, limit)) add(transaction('nat', some.map(declareChain)));
    for (const some of slices(removals, limit)) add(transaction('nat', some.map(deleteChain)));
  }
  return payloadOf('partial', parts, {
    natRulesWritten: natRules,
    filterRulesWritten: filterRules,
    chainsWritten: declared - removals.length,
    chainsDeleted: removals.length,
    ...totals,
  }, transactions === 1);
}

/** A partial payload with nothing in it, for a sync whose only change is elsewhere (the loop-back set). */
export function emptyPartial(totals: { natRulesTotal: number; filterRulesTotal: number }): RestorePayload {
  return payloadOf('partial', [], { natRulesWritten: 0, filterRulesWritten: 0, chainsWritten: 0, chainsDeleted: 0, ...totals }, true);
}

/** `-D` the shared-chain rules that went, `-I … 1` the new ones (first: KUBE-SERVICES's NodePorts rule stays last). */
function diffSharedChain(before: readonly string[] = [], after: readonly string[] = [], out: string[]): number {
  const old = new Set(before);
  const now = new Set(after);
  let written = 0;
  for (const rule of before) {
    if (now.has(rule)) continue;
    const { chain, spec } = splitSharedRule(rule);
    out.push(deleteRule(chain, spec));
  }
  for (const rule of after) {
    if (old.has(rule)) continue;
    const { chain, spec } = splitSharedRule(rule);
    out.push(insertRule(chain, spec));
    written++;
  }
  return written;
}
