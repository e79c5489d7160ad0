import { endpointsForPort } from '../../model/endpoints.js';
import type { ClusterState } from '../../model/state.js';
import type { ServiceKey } from '../../model/types.js';
import { type IpvsFragment, renderIpvsFragment } from './fragment.js';
import type { IpvsOptions } from './options.js';
import { type IpvsDesired, desiredState } from './plan.js';
import { ipvsRulesBody } from './rules.js';

/**
 * IPVS mode's compiler: pure, stateful only in its cache of one fragment per Service, re-rendered only for
 * the Services reported as changed. The desired state of the whole node is assembled from the fragments.
 */
export class IpvsCompiler {
  private readonly fragments = new Map<ServiceKey, IpvsFragment>();

  constructor(readonly options: IpvsOptions) {}

  update(state: ClusterState, changed: Iterable<ServiceKey>): void {
    for (const key of changed) {
      const service = state.getService(key);
      if (service === undefined) {
        this.fragments.delete(key);
        continue;
      }
      const slices = state.slicesOf(key);
      const ports = service.ports.map((port) => ({
        port,
        endpoints: endpointsForPort(slices, port, this.options.family, this.options.node.name),
      }));
      this.fragments.set(key, renderIpvsFragment(service, ports, this.options));
    }
  }

  /** Everything the node should hold, with Services in key order so every output is deterministic. */
  desired(): IpvsDesired {
    const ordered = [...this.fragments.keys()].sort().map((k) => this.fragments.get(k)!);
    return desiredState(ordered, ipvsRulesBody(this.options, ordered.flatMap((f) => f.filterRules)));
  }

  get serviceCount(): number {
    return this.fragments.size;
  }
}
