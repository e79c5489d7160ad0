import { type IptablesTools, restoreTool, saveAll } from '../../kernel/iptables.js';
import { declareChain, deleteChain, deleteRule, transaction } from '../../kernel/syntax/iptables-restore.js';
import { parseIptablesSave } from '../../kernel/syntax/iptables-save.js';
import type { IPFamily } from '../../model/ip.js';
import { type BackendCleanup, type CleanupStage, nothingToRemove } from '../backend.js';
import { FIXED_CHAINS, IPVS_CHAINS, type Table, isPerServiceChain, loopbackSetNames } from '../shared/iptables-fixed.js';

/**
 * `switchboard cleanup` for the iptables backend, as kube-proxy's cleanupLeftoversForFamily: unlink our chains
 * from the built-in chains, then flush and delete them, in nat, filter and mangle. Unlike upstream (one `-D` per
 * known jump, then one restore per table) everything is one `iptables-restore --noflush` per family, planned
 * from a single iptables-save so it deletes exactly what the dump holds.
 *
 * Ours: FIXED_CHAINS per table (and IPVS mode's IPVS_CHAINS), plus the per-service chains (KUBE-SVC-/SVL-/EXT-/FW-/SEP-) in nat, the only
 * table they are ever created in. Kubelet's chains (KUBE-FIREWALL, KUBE-MARK-DROP, KUBE-KUBELET-CANARY,
 * KUBE-IPTABLES-HINT) and everyone else's are never named in the payload, so `--noflush` leaves them alone.
 *
 * References into our chains, which would make `-X` fail:
 * - from a built-in chain: the rule is deleted by its exact text (`-D CHAIN spec`), once per occurrence. That
 *   covers BUILTIN_JUMPS and older variants of them; a rule that only jumps to a chain we delete cannot work
 *   without it.
 * - from another agent's chain: that chain is not ours to edit, so the rule stays and our chain is flushed
 *   (it no longer does anything: a jump to an empty chain returns) but kept, and reported as kept.
 */

export const CLEANUP_TABLES: readonly Table[] = ['filter', 'nat', 'mangle'];

export interface RulesCleanup {
  /** The iptables-restore input (for `--noflush`), '' when there is nothing to remove. */
  readonly payload: string;
  /** Chains flushed and deleted, per table, in payload order. */
  readonly chainsDeleted: Readonly<Record<Table, readonly string[]>>;
  /** Our chains flushed but not deleted because another agent's chain still jumps to them. */
  readonly chainsKept: Readonly<Record<Table, readonly string[]>>;
  /** Rules deleted from built-in chains. */
  readonly jumpsDeleted: number;
}

/** The restore payload that removes Switchboard's chains and jumps from this dump; '' if there are none. */
export function planCleanup(dump: string): string {
  return planCleanupDetailed(dump).payload;
}

/** Pure: `dump` is `iptables-save` (or `ip6tables-save`) output of any tables. */
export function planCleanupDetailed(dump: string): RulesCleanup {
  const live = parseIptablesSave(dump);
  const scanned = scanDump(dump);
  const chainsDeleted = { filter: [], nat: [], mangle: [] } as Record<Table, string[]>;
  const chainsKept = { filter: [], nat: [], mangle: [] } as Record<Table, string[]>;
  let jumpsDeleted = 0;
  const sections: string[] = [];

  for (const table of CLEANUP_TABLES) {
    const present = live.chains.get(table);
    const info = scanned.get(table);
    if (present === undefined || info === undefined) continue;
    const perService = table === 'nat' ? [...present].filter(isPerServiceChain).sort() : [];
    // IPVS mode's chains are ours too, whichever backend wrote the rules last.
    const fixed = [...FIXED_CHAINS[table], ...IPVS_CHAINS[table]];
    const ours = [...fixed.filter((c) => present.has(c)), ...perService];
    if (ours.length === 0) continue;
    const ourSet = new Set(ours);

    const deletes: string[] = [];
    const referencedByForeign = new Set<string>();
    const withRules = new Set<string>();
    for (const rule of info.rules) {
      if (ourSet.has(rule.chain)) {
        withRules.add(rule.chain);
        continue;
      }
      const target = ruleTarget(rule.spec);
      if (target === undefined || !ourSet.has(target)) continue;
      if (info.builtin.has(rule.chain)) deletes.push(deleteRule(rule.chain, rule.spec));
      else referencedByForeign.add(target);
    }

    const flushes: string[] = [];
    const removals: string[] = [];
    for (const chain of ours) {
      if (referencedByForeign.has(chain)) {
        // Already empty: nothing to do, so a second cleanup stays a no-op.
        if (!withRules.has(chain)) continue;
        flushes.push(declareChain(chain));
        chainsKept[table].push(chain);
      } else {
        flushes.push(declareChain(chain));
        removals.push(deleteChain(chain));
        chainsDeleted[table].push(chain);
      }
    }
    if (flushes.length + deletes.length === 0) continue;
    jumpsDeleted += deletes.length;
    // Flush (chain lines) and unlink before -X: a chain can only be deleted once nothing refers to it.
    sections.push(...transaction(table, flushes, deletes, removals));
  }
  return { payload: sections.join(''), chainsDeleted, chainsKept, jumpsDeleted };
}

interface ScannedRule {
  readonly chain: string;
  /** The rule after `-A CHAIN `, exactly as iptables-save printed it. */
  readonly spec: string;
}

interface ScannedTable {
  /** Chains with a policy (`:INPUT ACCEPT [..]`); user chains show `-`. */
  readonly builtin: Set<string>;
  /** Every rule in dump order, duplicates kept: a jump present twice needs two `-D`s. */
  readonly rules: ScannedRule[];
}

/** What parseIptablesSave drops and cleanup needs: chain policies and rules with their duplicates. */
function scanDump(dump: string): Map<string, ScannedTable> {
  const tables = new Map<string, ScannedTable>();
  let current: ScannedTable | undefined;
  for (const raw of dump.split('\n')) {
    const line = raw.trimEnd();
    if (line.startsWith('*')) {
      const name = line.slice(1).trim();
      current = tables.get(name) ?? { builtin: new Set(), rules: [] };
      tables.set(name, current);
    } else if (current === undefined) {
      continue;
    } else if (line.startsWith(':')) {
      const [name, policy] = line.slice(1).split(' ');
      if (name && policy && policy !== '-') current.builtin.add(name);
    } else if (line.startsWith('-A ')) {
      const rest = line.slice(3);
      const space = rest.indexOf(' ');
      if (space > 0) current.rules.push({ chain: rest.slice(0, space), spec: rest.slice(space + 1) });
    }
  }
  return tables;
}

/** The `-j`/`-g` target of a rule spec; quoted arguments (comments) are skipped whole. */
export function ruleTarget(spec: string): string | undefined {
  const tokens = tokenize(spec);
  for (let i = 0; i < tokens.length - 1; i++) {
    const t = tokens[i];
    if (t === '-j' || t === '-g' || t === '--jump' || t === '--goto') return tokens[i + 1];
  }
  return undefined;
}

/** Splits on spaces, keeping `"..."` (with iptables-save's `\"` escapes) as one token. */
function tokenize(spec: string): string[] {
  const tokens: string[] = [];
  let i = 0;
  while (i < spec.length) {
    if (spec[i] === ' ') {
      i++;
      continue;
    }
    let token = '';
    if (spec[i] === '"') {
      i++;
      while (i < spec.length && spec[i] !== '"') {
        if (spec[i] === '\\' && i + 1 < spec.length) i++;
        token += spec[i];
        i++;
      }
      i++;
    } else {
      while (i < spec.length && spec[i] !== ' ') token += spec[i++];
    }
    tokens.push(token);
  }
  return tokens;
}

/** "nat 7 chains, filter 6 chains, mangle 1 chain, 12 jumps from built-in chains", or '' when empty. */
export function describeCleanup(plan: RulesCleanup): string {
  const parts: string[] = [];
  for (const table of CLEANUP_TABLES) {
    const n = plan.chainsDeleted[table].length;
    if (n > 0) parts.push(`${table} ${n} chain${n === 1 ? '' : 's'}`);
  }
  if (plan.jumpsDeleted > 0) parts.push(`${plan.jumpsDeleted} jump${plan.jumpsDeleted === 1 ? '' : 's'} from built-in chains`);
  const kept = CLEANUP_TABLES.flatMap((t) => plan.chainsKept[t].map((c) => `${t}/${c}`));
  if (kept.length > 0) parts.push(`flushed but kept (another agent's chain jumps to them): ${kept.join(' ')}`);
  return parts.join(', ');
}

/**
 * `switchboard cleanup` of iptables rules (iptables mode's, and IPVS mode's, which live in the same chains):
 * one stage per family, each one `iptables-restore --noflush` planned from that family's `iptables-save`. IPv6 is
 * best effort as in kube-proxy: a node without ip6tables has no IPv6 rules of ours. `save` reads a dump.
 */
export function iptablesCleanup(toolsOf: (family: IPFamily) => IptablesTools, save: (tools: IptablesTools) => Promise<string> = saveAll): BackendCleanup {
  const stage = (family: IPFamily): CleanupStage => ({
    name: family,
    bestEffort: family === 'IPv6',
    async plan() {
      const tools = toolsOf(family);
      const plan = planCleanupDetailed(await save(tools));
      if (plan.payload === '') return nothingToRemove();
      const what = describeCleanup(plan);
      // Each table's COMMIT is atomic; a re-run removes whatever an earlier table left.
      return { steps: [{ kind: 'input', tool: restoreTool(tools), input: [plan.payload], atomic: false }], done: `removed ${what}`, wouldDo: `would remove ${what}` };
    },
  });
  const sets = (['IPv4', 'IPv6'] as const).flatMap((family) => Object.values(loopbackSetNames(family)));
  return { stages: [stage('IPv4'), stage('IPv6')], sets };
}
