import { exactSize } from '../exact-size.js';
import type { NodeTopology } from './categorize.js';
import type { EndpointSlice, Service, ServiceKey } from './types.js';

/**
 * The cluster as the proxier sees it: compact Services and EndpointSlices, plus the set of Services whose
 * rules may have changed since the last time someone took the changes (upstream's UpdatedServices).
 */
export class ClusterState {
  private readonly services = new Map<ServiceKey, Service>();
  private readonly slices = new Map<string, EndpointSlice>();
  /**
   * Each Service's slices in name order (they share its namespace), as immutable arrays replaced on change:
   * a Map per Service cost some 850 bytes each, 8.5 MB at 10,000 Services that nearly all have one slice.
   */
  private readonly slicesByService = new Map<ServiceKey, readonly EndpointSlice[]>();
  private readonly changed = new Set<ServiceKey>();
  private topology: NodeTopology;

  /** `nodeName`: the node the state is seen from; its endpoints are local. */
  constructor(nodeName = '', zone: string | undefined = undefined, ips: readonly string[] = []) {
    this.topology = { name: nodeName, zone, ips };
  }

  /** The node the state is seen from, as endpoint selection needs it. */
  get node(): NodeTopology {
    return this.topology;
  }

  /** The node's zone changed: topology hints may choose other endpoints for every Service. */
  setNodeZone(zone: string | undefined): void {
    if (zone === this.topology.zone) return;
    this.topology = { ...this.topology, zone };
    for (const key of this.services.keys()) this.changed.add(key);
  }

  /** The node's IPs changed: the load-balancer firewall rules of every Service may change. */
  setNodeIPs(ips: readonly string[]): void {
    if (ips.length === this.topology.ips.length && ips.every((ip, i) => ip === this.topology.ips[i])) return;
    this.topology = { ...this.topology, ips };
    for (const key of this.services.keys()) this.changed.add(key);
  }

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
    if (previous !== undefined && previous.service !== slice.service) this.unindex(previous);
    this.slices.set(id, slice);
    const others = this.slicesByService.get(slice.service) ?? [];
    const at = others.findIndex((s) => s.name === slice.name);
    // concat and map size their result exactly (push would leave spare capacity in every list).
    const next = at >= 0 ? others.map((s, i) => (i === at ? slice : s)) : others.concat([slice]).sort(byName);
    this.slicesByService.set(slice.service, next);
    this.changed.add(slice.service);
  }

  deleteSlice(namespace: string, name: string): void {
    const id = `${namespace}/${name}`;
    const previous = this.slices.get(id);
    if (previous === undefined) return;
    this.slices.delete(id);
    this.unindex(previous);
  }

  private unindex(slice: EndpointSlice): void {
    const rest = exactSize((this.slicesByService.get(slice.service) ?? []).filter((s) => s.name !== slice.name));
    if (rest.length === 0) this.slicesByService.delete(slice.service);
    else this.slicesByService.set(slice.service, rest);
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
  slicesOf(key: ServiceKey): readonly EndpointSlice[] {
    return this.slicesByService.get(key) ?? [];
  }

  /** Returns and forgets the Services changed since the last call. */
  takeChanges(): Set<ServiceKey> {
    const out = new Set(this.changed);
    this.changed.clear();
    return out;
  }
}

function byName(a: EndpointSlice, b: EndpointSlice): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}
