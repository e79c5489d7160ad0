// Which Services the operator should hear about: those with a selector but no endpoints at all (the classic
// "my Service does not work"), and the ports of internalTrafficPolicy Local Services (and externally reachable
// externalTrafficPolicy Local ones) whose endpoints are all on other nodes: that traffic is dropped on this
// node (kube-proxy's no_local_endpoints_total, traffic_policy internal and external).
import type { IPFamily } from '../model/ip.js';
import { viewService } from '../model/service-view.js';
import type { ClusterState } from '../model/state.js';
import type { ServiceKey } from '../model/types.js';

export type EndpointsChange = 'missing' | 'restored' | 'deleted';

export interface EndpointWatchReport {
  /** Services that lost, regained, or were deleted without endpoints, since the last report. */
  readonly noEndpoints: readonly { readonly service: ServiceKey; readonly change: EndpointsChange }[];
  /** Services with a selector and no endpoints, now. */
  readonly withoutEndpoints: number;
  /** Service ports with internalTrafficPolicy Local, endpoints elsewhere and none on this node, now. */
  readonly noLocalInternal: number;
  /** Externally reachable Service ports with externalTrafficPolicy Local, endpoints elsewhere and none here, now. */
  readonly noLocalExternal: number;
}

interface Gaps {
  readonly internal: number;
  readonly external: number;
}

export class EndpointWatch {
  private readonly withoutEndpoints = new Set<ServiceKey>();
  /** Per Service, its ports that have endpoints, none of them local, under a Local traffic policy. */
  private readonly localGaps = new Map<ServiceKey, Gaps>();
  private internalGapTotal = 0;
  private externalGapTotal = 0;

  constructor(
    private readonly state: ClusterState,
    private readonly family: IPFamily,
  ) {}

  /** Looks at the changed Services again. */
  observe(changed: Iterable<ServiceKey>): EndpointWatchReport {
    const noEndpoints: { service: ServiceKey; change: EndpointsChange }[] = [];
    for (const key of changed) {
      const service = this.state.getService(key);
      const missing = service !== undefined && service.hasSelector && this.endpointTotal(key) === 0;
      if (missing !== this.withoutEndpoints.has(key)) {
        if (missing) this.withoutEndpoints.add(key);
        else this.withoutEndpoints.delete(key);
        noEndpoints.push({ service: key, change: missing ? 'missing' : service === undefined ? 'deleted' : 'restored' });
      }
      // Only Local-policy Services can have a gap, so only theirs are worth a view (its merged endpoints).
      let internal = 0;
      let external = 0;
      if (service?.internalTrafficPolicy === 'Local' || service?.externalTrafficPolicy === 'Local') {
        for (const port of viewService(this.state, key, this.family)?.ports ?? []) {
          const gap = port.selection.hasAnyEndpoints && port.selection.localEndpoints.length === 0;
          if (gap && service.internalTrafficPolicy === 'Local') internal++;
          if (gap && service.externalTrafficPolicy === 'Local' && port.externallyAccessible) external++;
        }
      }
      const before = this.localGaps.get(key);
      this.internalGapTotal += internal - (before?.internal ?? 0);
      this.externalGapTotal += external - (before?.external ?? 0);
      if (internal + external > 0) this.localGaps.set(key, { internal, external });
      else this.localGaps.delete(key);
    }
    return {
      noEndpoints,
      withoutEndpoints: this.withoutEndpoints.size,
      noLocalInternal: this.internalGapTotal,
      noLocalExternal: this.externalGapTotal,
    };
  }

  private endpointTotal(key: ServiceKey): number {
    let n = 0;
    for (const slice of this.state.slicesOf(key)) n += slice.endpoints.length;
    return n;
  }
}
