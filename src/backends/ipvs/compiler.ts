import { viewService } from '../../model/service-view.js';
import type { ClusterState } from '../../model/state.js';
import type { ServiceKey } from '../../model/types.js';
import { FragmentLedger, type LedgerTake } from '../shared/fragment-ledger.js';
import { type IpvsFragment, nodePortAddressesOf, renderIpvsFragment } from './fragment.js';
import type { IpvsOptions } from './options.js';
import { type IpvsDesired, desiredState } from './plan.js';
import { ipvsRulesBody } from './rules.js';

/**
 * IPVS mode's compiler: pure, stateful only in its cache of one fragment per Service, re-rendered only for
 * the Services reported as changed. Every sync diffs the desired state of the whole node, assembled from the
 * fragments, against the kernel's (plan.ts), so what the kernel holds is kept as IPVS state by the backend.
 */
export class IpvsCompiler {
  private readonly ledger = new FragmentLedger<IpvsFragment>();
  /** The NodePort addresses the fragments were rendered with (node IP changes re-render every Service). */
  private nodePortAddresses: readonly string[] = [];

  constructor(readonly options: IpvsOptions) {}

  update(state: ClusterState, changed: Iterable<ServiceKey>): void {
    const nodeIPs = state.node.ips;
    this.nodePortAddresses = nodePortAddressesOf(this.options, nodeIPs);
    for (const key of changed) {
      const view = viewService(state, key, this.options.family);
      this.ledger.set(key, view === undefined ? undefined : renderIpvsFragment(view, this.options, this.nodePortAddresses, nodeIPs));
    }
  }

  /** Everything the node should hold, with Services in key order so every output is deterministic. */
  desired(): LedgerTake<IpvsDesired> {
    const { take: ordered, commit, abort } = this.ledger.takeFull();
    const rules = (nonEmpty: ReadonlySet<string>) => ipvsRulesBody(this.options, ordered.flatMap((f) => f.filterRules), nonEmpty);
    return { take: desiredState(ordered, new Set(this.nodePortAddresses), rules), commit, abort };
  }

  get serviceCount(): number {
    return this.ledger.size;
  }
}
