import { describe, expect, it } from 'vitest';
import { compilerFor, load } from '../support/compile.js';
import { parseRules } from '../support/iptables-text.js';
import { syntheticCluster } from '../support/objects.js';

// Upstream's number_generated_rules_test.go (ClusterIP column): filter / nat rule counts for N Services
// x E endpoints. A ClusterIP Service port costs 2 + 3E nat rules, or one filter REJECT with no endpoints.
// Without localhost NodePorts, whose KUBE-FIREWALL rule would add one filter rule to every row.
describe('rules per Service and endpoint (upstream table)', () => {
  it.each([
    [0, 0, 3, 5],
    [1, 0, 4, 5],
    [1, 1, 3, 10],
    [1, 2, 3, 13],
    [1, 10, 3, 37],
    [10, 0, 13, 5],
    [10, 1, 3, 55],
    [10, 2, 3, 85],
    [10, 10, 3, 325],
  ])('%i services x %i endpoints: %i filter, %i nat rules', (services, endpoints, filter, nat) => {
    const loaded = load(syntheticCluster(services, endpoints));
    const payload = compilerFor(loaded, { clusterCidr: '10.0.0.0/8', localhostNodePorts: false }).planFull().payload;
    expect(payload.stats.filterRulesTotal).toBe(filter);
    expect(payload.stats.natRulesTotal).toBe(nat);
    // The stats must agree with the text itself.
    const count = (table: string) => [...parseRules(payload.text).get(table)!.entries()].filter(([c]) => c !== '!ops').reduce((n, [, r]) => n + r.length, 0);
    expect(count('filter')).toBe(filter);
    expect(count('nat')).toBe(nat);
  });
});

describe('rule totals of partial syncs', () => {
  it('equal what a full sync of the same state reports, fixed chains included', () => {
    const loaded = load(syntheticCluster(10, 2));
    const compiler = compilerFor(loaded, { clusterCidr: '10.0.0.0/8', localhostNodePorts: false });
    compiler.planFull().commit();
    // Drop one Service's slice: its 2 endpoints go, its ClusterIP gets a filter REJECT instead.
    const service = [...loaded.state.allServices()][0]!;
    const slice = loaded.state.slicesOf(service.key)[0]!;
    loaded.state.deleteSlice(slice.namespace, slice.name);
    compiler.update(loaded.state, loaded.state.takeChanges());
    const partial = compiler.planPartial()!;
    const full = compiler.planFull().payload;
    expect(partial.payload.stats.natRulesTotal).toBe(full.stats.natRulesTotal);
    expect(partial.payload.stats.filterRulesTotal).toBe(full.stats.filterRulesTotal);
    expect(full.stats.filterRulesTotal).toBe(4);
    expect(full.stats.natRulesTotal).toBe(85 - 8);
  });
});
