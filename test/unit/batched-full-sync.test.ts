import { describe, expect, it } from 'vitest';
import { parseLiveRules } from '../../src/backends/iptables/live-rules.js';
import { MAX_CHAINS_PER_TRANSACTION } from '../../src/backends/iptables/options.js';
import { compilerFor, load } from '../support/compile.js';
import { endpointSlice, service, syntheticCluster } from '../support/objects.js';
import { normalizeEndpointSlice } from '../../src/model/endpoint-slice.js';
import { normalizeService } from '../../src/model/service.js';
import type { JsonObject } from '../../src/model/fields.js';
import { serviceKey } from '../../src/model/types.js';

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
    // The kernel ends with exactly what a single transaction (kube-proxy's shape, legacy mode's) would have written.
    const singleText = compilerFor(load(syntheticCluster(services, 10)), { maxChainsPerTransaction: Infinity }).planFull().payload.text;
    expect(transactions(singleText).map((t) => t.table)).toEqual(['filter', 'nat', 'mangle']);
    const single = finalRules(singleText);
    expect(finalRules(text)).toEqual(single);
    expect([...finalRules(text).values()].reduce((n, r) => n + r.length, 0)).toBe(compiler.planFull().payload.stats.natRulesTotal);
  });

  it('flushes stale chains before KUBE-SERVICES is rewritten and deletes them only after', () => {
    const before = compilerFor(load(syntheticCluster(500, 10))).planFull().payload.text;
    const live = parseLiveRules(before.replace(/^-X .*\n/gm, ''));
    const text = compilerFor(load(syntheticCluster(300, 10))).planFull(live).payload.text;
    const nat = transactions(text).filter((t) => t.table === 'nat');
    const servicesAt = nat.findIndex((t) => t.lines.some((l) => l.startsWith('-A KUBE-SERVICES ')));
    const deletesAt = nat.findIndex((t) => t.lines.some((l) => l.startsWith('-X ')));
    expect(deletesAt).toBeGreaterThan(servicesAt);
    expect(nat.slice(deletesAt).flatMap((t) => t.lines).filter((l) => l.startsWith('-X ')).length).toBe(200 * 11);
  });
});

describe('partial sync of a large change', () => {
  const extra = (n: number) => syntheticCluster(n, 10).map((o) => {
    const copy = structuredClone(o) as { metadata: { namespace: string }; spec?: { clusterIP?: string } };
    copy.metadata.namespace = `extra-${copy.metadata.namespace}`;
    if (copy.spec?.clusterIP) copy.spec.clusterIP = copy.spec.clusterIP.replace(/^10\.96\./, '10.95.');
    return copy as unknown as Record<string, unknown>;
  });

  it('adds 300 Services in transactions of whole Services, KUBE-SERVICES edits after them, and deletes them after the edits', () => {
    const loaded = load(syntheticCluster(10, 10));
    const compiler = compilerFor(loaded, { maxChainsPerTransaction: 500 });
    compiler.planFull().commit();
    const added = extra(300);
    for (const o of added) {
      if (o['kind'] === 'Service') {
        const r = normalizeService(o as JsonObject);
        if (r.status !== 'ok') throw new Error('bad service');
        loaded.state.setService(r.value);
      } else {
        const r = normalizeEndpointSlice(o as JsonObject);
        if (r.status !== 'ok') throw new Error('bad slice');
        loaded.state.setSlice(r.value);
      }
    }
    compiler.update(loaded.state, loaded.state.takeChanges());
    const plan = compiler.planPartial()!;
    const nat = transactions(plan.payload.text).filter((t) => t.table === 'nat');
    expect(nat.length).toBe(Math.ceil((300 * 11) / 506) + 1);
    for (const t of nat) expect(t.lines.filter((l) => l.startsWith(':')).length).toBeLessThanOrEqual(500 + 10);
    const edits = nat.at(-1)!.lines;
    expect(edits.filter((l) => l.startsWith('-I KUBE-SERVICES 1 ')).length).toBe(300);
    expect(nat.slice(0, -1).flatMap((t) => t.lines).some((l) => l.includes('KUBE-SERVICES'))).toBe(false);
    plan.commit();

    for (const o of added) {
      const meta = o['metadata'] as { namespace: string; name: string };
      if (o['kind'] === 'Service') loaded.state.deleteService(serviceKey(meta.namespace, meta.name));
      else loaded.state.deleteSlice(meta.namespace, meta.name);
    }
    compiler.update(loaded.state, loaded.state.takeChanges());
    const removal = transactions(compiler.planPartial()!.payload.text).filter((t) => t.table === 'nat');
    // (The 10 remaining Services are rewritten too: the cluster fell below the large-cluster threshold.)
    const editsAt = removal.findIndex((t) => t.lines.some((l) => l.startsWith('-D KUBE-SERVICES ')));
    expect(removal[editsAt]!.lines.filter((l) => l.startsWith('-D KUBE-SERVICES ')).length).toBe(300);
    expect(removal.slice(0, editsAt + 1).flatMap((t) => t.lines).some((l) => l.startsWith('-X '))).toBe(false);
    const deleted = removal.slice(editsAt + 1).flatMap((t) => t.lines).filter((l) => l.startsWith('-X '));
    expect(deleted.length).toBe(300 * 11);
    for (const t of removal.slice(editsAt + 1)) expect(t.lines.filter((l) => l.startsWith('-X ')).length).toBeLessThanOrEqual(500);
  });
});
