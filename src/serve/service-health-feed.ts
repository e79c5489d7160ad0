// What the per-service health server needs after each sync, read off the state: which Services want a
// health-check node port, and how many ready endpoints each has on this node (upstream's
// LocalReadyEndpoints: distinct local ready IPs over the Service's ports).
import type { IPFamily } from '../model/ip.js';
import type { ClusterState } from '../model/state.js';
import type { SyncHooks } from '../sync/hooks.js';
import type { ServiceHealthServer } from './service-health.js';

export interface HealthCheckWants {
  /** `ns/name` → healthCheckNodePort, for LoadBalancer Services with externalTrafficPolicy Local. */
  readonly ports: ReadonlyMap<string, number>;
  /** `ns/name` → ready endpoints on this node. */
  readonly localEndpoints: ReadonlyMap<string, number>;
}

/**
 * Over the families programmed: a Service without a ClusterIP of any of them is not ours, as upstream's
 * per-family proxiers skip it; local endpoints are counted over the slices of those families.
 */
export function healthCheckWants(state: ClusterState, families: readonly IPFamily[]): HealthCheckWants {
  const ports = new Map<string, number>();
  const localEndpoints = new Map<string, number>();
  const node = state.node.name;
  for (const service of state.allServices()) {
    if (service.healthCheckNodePort === 0 || !families.some((f) => service.clusterIPs[f] !== undefined)) continue;
    ports.set(service.key, service.healthCheckNodePort);
    const ips = new Set<string>();
    for (const slice of state.slicesOf(service.key)) {
      if (!families.includes(slice.family) || service.clusterIPs[slice.family] === undefined) continue;
      for (const ep of slice.endpoints) if (ep.ready && ep.nodeName === node) ips.add(ep.ip);
    }
    localEndpoints.set(service.key, ips.size);
  }
  return { ports, localEndpoints };
}

/** Feeds the health server after every successful sync, as upstream's syncProxyRules does. */
export function serviceHealthHooks(server: ServiceHealthServer, state: ClusterState, families: readonly IPFamily[]): Partial<SyncHooks> {
  return {
    synced: () => {
      const wants = healthCheckWants(state, families);
      void server.syncServices(wants.ports);
      server.syncEndpoints(wants.localEndpoints);
    },
  };
}
