import type { EndpointSlice, Service, ServiceKey } from './types.js';

/**
 * The cluster as the proxier sees it: compact Services and EndpointSlices, plus the set of Services whose
 * rules may have changed since the last time someone took the changes (upstream's UpdatedServices).
 */
export class ClusterState {
  private readonly services = new Map<ServiceKey, Service>();
  private readonly slices = new Map<string, EndpointSlice>();
  private readonly slicesByService = new Map<ServiceKey, Map<string, EndpointSlice>>();
  private readonly changed = new Set<ServiceKey>();

  setService(service: Service): void {
    this.services.set(service.key, service);
    this.changed.add(service.key);
  }

  deleteService(key: ServiceKey): void {
    if (this.services.delete(key)) this.changed.add(key);
  }

  setSlice(slice: EndpointSlice): void {
    const id = `${slice.namespace}/${slice.name}`;
    const previous = this.slices.get(id);
    // A slice can be relabelled to another Service: both Services change.
    if (previous !== undefined && previous.service !== slice.service) this.unindex(id, previous);
    this.slices.set(id, slice);
    let bySlice = this.slicesByService.get(slice.service);
    if (bySlice === undefined) {
      bySlice = new Map();
      this.slicesByService.set(slice.service, bySlice);
    }
    bySlice.set(id, slice);
    this.changed.add(slice.service);
  }

  deleteSlice(namespace: string, name: string): void {
    const id = `${namespace}/${name}`;
    const previous = this.slices.get(id);
    if (previous === undefined) return;
    this.slices.delete(id);
    this.unindex(id, previous);
  }

  private unindex(id: string, slice: EndpointSlice): void {
    const bySlice = this.slicesByService.get(slice.service);
    bySlice?.delete(id);
    if (bySlice?.size === 0) this.slicesByService.delete(slice.service);
    this.changed.add(slice.service);
  }

  getSlice(namespace: string, name: string): EndpointSlice | undefined {
    return this.slices.get(`${namespace}/${name}`);
  }

  getService(key: ServiceKey): Service | undefined {
    return this.services.get(key);
  }

  allServices(): IterableIterator<Service> {
    return this.services.values();
  }

  get serviceCount(): number {
    return this.services.size;
  }

  /** Slices of a Service in name order, so endpoint merging is deterministic. */
  slicesOf(key: ServiceKey): EndpointSlice[] {
    const bySlice = this.slicesByService.get(key);
    if (bySlice === undefined) return [];
    return [...bySlice.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, slice]) => slice);
  }

  /** Returns and forgets the Services changed since the last call. */
  takeChanges(): Set<ServiceKey> {
    const out = new Set(this.changed);
    this.changed.clear();
    return out;
  }
}
