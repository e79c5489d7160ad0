import { describe, expect, it } from 'vitest';
import { parseIptablesSave } from '../../src/backends/iptables/live-state.js';
import { MAX_CHAINS_PER_TRANSACTION } from '../../src/backends/iptables/options.js';
import { compilerFor, load } from '../support/compile.js';
import { syntheticCluster } from '../support/objects.js';

/** The payload's transactions: table and body of each `*table … COMMIT`. */
function transactions(text: string): { table: string; lines: string[] }[] {
  const out: { table: string; lines: string[] }[] = [];
  for (const block of text.split('COMMIT\n')) {
    const lines = block.split('\n').filter((l) => l !== '');
    if (lines.length === 0) continue;
    out.push({ table: lines[0]!.slice(1), lines: lines.slice(1) });
  }
  return out;
}

/** Rules per chain, merged over transactions as the kernel ends up with them (a `:CHAIN` line empties it). */
function finalRules(text: string): Map<string, string[]> {
  const chains = new Map<string, string[]>();
  for (const t of transactions(text)) {
    if (t.table !== 'nat') continue;
    for (const l of t.lines) {
      if (l.startsWith(':')) chains.set(l.slice(1).split(' ')[0]!, []);
      else if (l.startsWith('-A ')) chains.get(l.split(' ')[1]!)!.push(l);
      else if (l.startsWith('-X ')) chains.delete(l.slice(3));
    }
  }
  return chains;
}

describe('full sync of a large cluster', () => {
  it('stays one transaction per table up to the limit', () => {
    const text = compilerFor(load(syntheticCluster(100, 10))).planFull().payload.text;
    expect(transactions(text).map((t) => t.table)).toEqual(['filter', 'nat', 'mangle']);
  });

  it('is split into transactions of whole Services, each declaring at most the limit, with KUBE-SERVICES last', () => {
    const services = 500; // x 11 chains = 5,500 > 2,000
    const compiler = compilerFor(load(syntheticCluster(services, 10)));
    const text = compiler.planFull().payload.text;
    const nat = transactions(text).filter((t) => t.table === 'nat');
    expect(nat.length).toBeGreaterThan(3);
    for (const t of nat) {
      const declared = t.lines.filter((l) => l.startsWith(':')).length;
      expect(declared).toBeLessThanOrEqual(MAX_CHAINS_PER_TRANSACTION + 10);
      // Every chain a transaction fills is declared in that same transaction (flush and fill are atomic).
      const declaredNames = new Set(t.lines.filter((l) => l.startsWith(':')).map((l) => l.slice(1).split(' ')[0]));
      for (const l of t.lines.filter((x) => x.startsWith('-A '))) expect(declaredNames.has(l.split(' ')[1])).toBe(true);
    }
    const last = nat.at(-1)!;
    expect(last.lines.filter((l) => l.startsWith('-A KUBE-SERVICES ')).length).toBe(services + 1);
    // The kernel ends with exactly what a single transaction would have written.
    const single = finalRules(compilerFor(load(syntheticCluster(services, 10))).planFull().payload.text);
    expect(finalRules(text).size).toBe(single.size);
    expect([...finalRules(text).values()].reduce((n, r) => n + r.length, 0)).toBe(compiler.planFull().payload.stats.natRulesTotal);
  });

  it('flushes stale chains before KUBE-SERVICES is rewritten and deletes them only after', () => {
    const before = compilerFor(load(syntheticCluster(500, 10))).planFull().payload.text;
    const live = parseIptablesSave(before.replace(/^-X .*\n/gm, ''));
    const text = compilerFor(load(syntheticCluster(300, 10))).planFull(live).payload.text;
    const nat = transactions(text).filter((t) => t.table === 'nat');
    const servicesAt = nat.findIndex((t) => t.lines.some((l) => l.startsWith('-A KUBE-SERVICES ')));
    const deletesAt = nat.findIndex((t) => t.lines.some((l) => l.startsWith('-X ')));
    expect(deletesAt).toBeGreaterThan(servicesAt);
    expect(nat.slice(deletesAt).flatMap((t) => t.lines).filter((l) => l.startsWith('-X ')).length).toBe(200 * 11);
  });
});
