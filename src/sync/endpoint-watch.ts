// Which Services the operator should hear about: those with a selector but no endpoints at all (the classic
// "my Service does not work"), and the ports of internalTrafficPolicy Local Services whose endpoints are all
// on other nodes (their traffic from this node is dropped; kube-proxy's no_local_endpoints_total).
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
}

export class EndpointWatch {
  private readonly withoutEndpoints = new Set<ServiceKey>();
  /** Per Service, its ports that have endpoints, none of them local, under internalTrafficPolicy Local. */
  private readonly localGaps = new Map<ServiceKey, number>();
  private localGapTotal = 0;

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
      let gaps = 0;
      if (service?.internalTrafficPolicy === 'Local') {
        for (const port of viewService(this.state, key, this.family)?.ports ?? []) {
          if (port.selection.hasAnyEndpoints && port.selection.localEndpoints.length === 0) gaps++;
        }
      }
      this.localGapTotal += gaps - (this.localGaps.get(key) ?? 0);
      if (gaps > 0) this.localGaps.set(key, gaps);
      else this.localGaps.delete(key);
    }
    return { noEndpoints, withoutEndpoints: this.withoutEndpoints.size, noLocalInternal: this.localGapTotal };
  }

  private endpointTotal(key: ServiceKey): number {
    let n = 0;
    for (const slice of this.state.slicesOf(key)) n += slice.endpoints.length;
    return n;
  }
}
