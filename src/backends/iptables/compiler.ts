import { endpointCountForPort, endpointsForPort } from '../../model/endpoints.js';
import type { ClusterState } from '../../model/state.js';
import type { ServiceKey, ServicePortSpec } from '../../model/types.js';
import { type ServiceFragment, renderServiceFragment } from './fragment.js';
import { EMPTY_LIVE_RULES, type LiveRules } from '../../kernel/syntax/iptables-save.js';
import type { ServicePortInput } from '../../model/service-view.js';
import type { HairpinKey } from '../shared/hairpin-members.js';
import { type IptablesOptions, fixedRulesOptions } from './options.js';
import { type IpsetPlan, LoopbackSet } from './loopback-set.js';
import { type RestorePayload, emptyPartial, planFull, planPartial } from './payload.js';
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
  private readonly wanted = new Map<ServiceKey, ServiceFragment>();
  private applied = new Map<ServiceKey, ServiceFragment>();
  private pending = new Set<ServiceKey>();
  private readonly endpointCounts = new Map<ServiceKey, number>();
  private totalEndpoints = 0;
  private largeCluster = false;
  /** Rule totals over `wanted`, kept as fragments change so a partial sync need not walk every Service. */
  private natRulesTotal = 0;
  private filterRulesTotal = 0;

  /** Fixed-chain rules (and the NodePorts tail rule), so partial plans report the same totals as full ones. */
  private readonly fixedNatRules: number;
  private readonly fixedFilterRules: number;

  private readonly loopback: LoopbackSet;

  constructor(readonly options: IptablesOptions) {
    this.loopback = new LoopbackSet(options.family);
    this.fixedNatRules = fixedRules('nat', fixedRulesOptions(options)).length + 1;
    this.fixedFilterRules = fixedRules('filter', fixedRulesOptions(options)).length;
  }

  /** Re-renders the given Services from `state` (deleted ones are dropped). */
  update(state: ClusterState, changed: Iterable<ServiceKey>): void {
    // Counted first and rendered one Service at a time: holding every changed Service's merged endpoints until
    // all are counted (100,000 objects at 10,000 Services) let them outlive young-generation collections, and
    // the old generation grew by their size on every full resync.
    const keys = new Set(changed);
    for (const key of keys) {
      const service = state.getService(key);
      const count = service === undefined ? 0 : this.endpointCount(state, key, service.ports);
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
      const service = state.getService(key);
      const before = this.wanted.get(key);
      if (before !== undefined) {
        this.natRulesTotal -= before.natRuleCount;
        this.filterRulesTotal -= before.filterServiceRules.length;
      }
      if (service === undefined) {
        this.wanted.delete(key);
        this.loopback.replace(before?.loopback, []);
      } else {
        const after = renderServiceFragment(service, this.portInputs(state, key, service.ports), this.options, this.largeCluster);
        this.wanted.set(key, after);
        this.loopback.replace(before?.loopback, after.loopback);
        this.natRulesTotal += after.natRuleCount;
        this.filterRulesTotal += after.filterServiceRules.length;
      }
      this.pending.add(key);
    }
  }

  private endpointCount(state: ClusterState, key: ServiceKey, ports: readonly ServicePortSpec[]): number {
    const slices = state.slicesOf(key);
    let n = 0;
    for (const port of ports) n += endpointCountForPort(slices, port, this.options.family);
    return n;
  }

  private portInputs(state: ClusterState, key: ServiceKey, ports: readonly ServicePortSpec[]): ServicePortInput[] {
    const slices = state.slicesOf(key);
    return ports.map((port) => ({
      port,
      endpoints: endpointsForPort(slices, port, this.options.family, this.options.node.name),
    }));
  }

  /** Everything, written over whatever `live` holds; stale chains found in `live` are deleted. */
  planFull(live: LiveRules = EMPTY_LIVE_RULES): SyncPlan {
    const snapshot = new Map(this.wanted);
    const ordered = [...snapshot.keys()].sort().map((k) => snapshot.get(k)!);
    const payload = planFull(ordered, this.options, live);
    const covered = this.pending;
    this.pending = new Set();
    const ipset = this.options.layout === 'flat' ? this.loopback.planFull() : undefined;
    return {
      payload,
      ...(ipset ? { ipset: ipset.plan } : {}),
      commit: () => {
        this.applied = snapshot;
        ipset?.commit();
      },
      abort: () => {
        for (const key of covered) this.pending.add(key);
      },
    };
  }

  /** Only what changed since the last committed plan; undefined when nothing did. */
  planPartial(): SyncPlan | undefined {
    const covered = this.pending;
    const snapshot = new Map<ServiceKey, ServiceFragment | undefined>();
    for (const key of covered) snapshot.set(key, this.wanted.get(key));
    const totals = {
      natRulesTotal: this.natRulesTotal + this.fixedNatRules,
      filterRulesTotal: this.filterRulesTotal + this.fixedFilterRules,
    };
    const rules = planPartial(this.applied, this.wanted, covered, totals, this.options.maxChainsPerTransaction);
    const touched: HairpinKey[] = [];
    for (const key of covered) touched.push(...(this.applied.get(key)?.loopback ?? []), ...(this.wanted.get(key)?.loopback ?? []));
    const ipset = this.loopback.planPartial(touched);
    this.pending = new Set();
    const commit = (): void => {
      for (const [key, fragment] of snapshot) {
        if (fragment === undefined) this.applied.delete(key);
        else this.applied.set(key, fragment);
      }
      ipset?.commit();
    };
    if (rules === undefined && ipset === undefined) {
      // Nothing to write: the kernel already holds text identical to these fragments.
      commit();
      return undefined;
    }
    return {
      payload: rules ?? emptyPartial(totals),
      ...(ipset ? { ipset: ipset.plan } : {}),
      commit,
      abort: () => {
        for (const key of covered) this.pending.add(key);
      },
    };
  }

  get serviceCount(): number {
    return this.wanted.size;
  }

  get isLargeCluster(): boolean {
    return this.largeCluster;
  }
}
