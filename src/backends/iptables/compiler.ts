import type { ClusterState } from '../../model/state.js';
import { serviceEndpointCount, viewService } from '../../model/service-view.js';
import type { ServiceKey } from '../../model/types.js';
import { type ServiceFragment, renderServiceFragment } from './fragment.js';
import { EMPTY_LIVE_RULES, type LiveRules } from '../../kernel/syntax/iptables-save.js';
import type { HairpinKey } from '../shared/hairpin-members.js';
import { type IptablesOptions, fixedRulesOptions, tailRules } from './options.js';
import { type IpsetPlan, LoopbackSet } from './loopback-set.js';
import { type RestorePayload, emptyPartial, planFull, planPartial } from './restore-plan.js';
import { FragmentLedger } from '../shared/fragment-ledger.js';
import { fixedRules } from '../shared/iptables-fixed.js';

/** A payload plus what to remember once the kernel has taken it. */
export interface SyncPlan {
  readonly payload: RestorePayload;
  /** Flat layout: the KUBE-LOOP-BACK changes to apply around the payload (see loopback-set.ts). */
  readonly ipset?: IpsetPlan;
  /** Call after the restore succeeded: the plan's fragments become the applied state. */
  commit(): void;
  /** Call after the restore failed: its Services stay pending (and the caller should plan a full sync). */
  abort(): void;
}

/**
 * The incremental iptables compiler: pure (no I/O, no clock), stateful only in its caches. It keeps one
 * rendered fragment per Service, re-rendering only Services reported as changed, and remembers which
 * fragments the kernel holds, so a partial sync writes only the difference.
 */
export class IptablesCompiler {
  private readonly ledger = new FragmentLedger<ServiceFragment>();
  private readonly endpointCounts = new Map<ServiceKey, number>();
  private totalEndpoints = 0;
  private largeCluster = false;
  /** Rule totals over the wanted fragments, kept as they change so a partial sync need not walk every Service. */
  private natRulesTotal = 0;
  private filterRulesTotal = 0;

  /** Fixed-chain rules (and the NodePorts tail rule), so partial plans report the same totals as full ones. */
  private readonly fixedNatRules: number;
  private readonly fixedFilterRules: number;

  private readonly loopback: LoopbackSet;

  constructor(readonly options: IptablesOptions) {
    this.loopback = new LoopbackSet(options.family);
    this.fixedNatRules = fixedRules('nat', fixedRulesOptions(options)).length + tailRules(options).length;
    this.fixedFilterRules = fixedRules('filter', fixedRulesOptions(options)).length;
  }

  /** Re-renders the given Services from `state` (deleted ones are dropped). */
  update(state: ClusterState, changed: Iterable<ServiceKey>): void {
    // Counted first and rendered one Service at a time: holding every changed Service's merged endpoints until
    // all are counted (100,000 objects at 10,000 Services) let them outlive young-generation collections, and
    // the old generation grew by their size on every full resync.
    const keys = new Set(changed);
    for (const key of keys) {
      const count = serviceEndpointCount(state, key, this.options.family);
      this.totalEndpoints += count - (this.endpointCounts.get(key) ?? 0);
      if (count > 0) this.endpointCounts.set(key, count);
      else this.endpointCounts.delete(key);
    }
    const largeCluster = this.totalEndpoints > this.options.largeClusterEndpointsThreshold;
    if (largeCluster !== this.largeCluster) {
      // Per-endpoint comments come and go with the mode, so every Service's text changes.
      this.largeCluster = largeCluster;
      for (const service of state.allServices()) keys.add(service.key);
    }
    for (const key of keys) {
      const view = viewService(state, key, this.options.family);
      const after = view === undefined ? undefined : renderServiceFragment(view, this.options, this.largeCluster, state.node.ips);
      const before = this.ledger.set(key, after);
      this.natRulesTotal += (after?.natRuleCount ?? 0) - (before?.natRuleCount ?? 0);
      this.filterRulesTotal += (after?.filterServiceRules.length ?? 0) - (before?.filterServiceRules.length ?? 0);
      this.loopback.replace(before?.loopback, after?.loopback);
    }
  }

  /** Everything, written over whatever `live` holds; stale chains found in `live` are deleted. */
  planFull(live: LiveRules = EMPTY_LIVE_RULES): SyncPlan {
    const { take: fragments, commit, abort } = this.ledger.takeFull();
    const payload = planFull(fragments, this.options, live);
    const ipset = this.options.layout === 'flat' ? this.loopback.planFull() : undefined;
    return {
      payload,
      ...(ipset ? { ipset: ipset.plan } : {}),
      commit: () => {
        commit();
        ipset?.commit();
      },
      abort,
    };
  }

  /** Only what changed since the last committed plan; undefined when nothing did. */
  planPartial(): SyncPlan | undefined {
    const { take: changes, commit: commitLedger, abort } = this.ledger.takePartial();
    const totals = {
      natRulesTotal: this.natRulesTotal + this.fixedNatRules,
      filterRulesTotal: this.filterRulesTotal + this.fixedFilterRules,
    };
    const rules = planPartial(changes, totals, this.options.maxChainsPerTransaction);
    const touched: HairpinKey[] = [];
    for (const { before, after } of changes) touched.push(...(before?.loopback ?? []), ...(after?.loopback ?? []));
    const ipset = this.loopback.planPartial(touched);
    const commit = (): void => {
      commitLedger();
      ipset?.commit();
    };
    if (rules === undefined && ipset === undefined) {
      // Nothing to write: the kernel already holds text identical to these fragments.
      commit();
      return undefined;
    }
    return { payload: rules ?? emptyPartial(totals), ...(ipset ? { ipset: ipset.plan } : {}), commit, abort };
  }

  get serviceCount(): number {
    return this.ledger.size;
  }

  get isLargeCluster(): boolean {
    return this.largeCluster;
  }
}
