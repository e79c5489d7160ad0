import type { IPFamily } from './ip.js';
import { joinHostPort } from './ip.js';
import type { Endpoint, EndpointSlice, ServicePortSpec } from './types.js';

/**
 * The endpoints of one service port, merged from all of the Service's slices as kube-proxy's
 * EndpointSliceCache does: the slice port with the same name and protocol gives the port (this is how a
 * named targetPort resolves), duplicates of `ip:port` collapse (a non-terminating copy wins), and the result is sorted
 * by `ip:port` text so rule order is stable.
 */
export function endpointsForPort(
  slices: readonly EndpointSlice[],
  port: ServicePortSpec,
  family: IPFamily,
  nodeName: string,
): Endpoint[] {
  const byHostPort = new Map<string, Endpoint>();
  for (const slice of slices) {
    if (slice.family !== family) continue;
    const slicePort = slice.ports.find((p) => p.name === port.name && p.protocol === port.protocol);
    if (slicePort === undefined) continue;
    for (const ep of slice.endpoints) {
      const hostPort = joinHostPort(ep.ip, slicePort.port);
      const isLocal = ep.nodeName !== undefined && ep.nodeName === nodeName;
      if (byHostPort.has(hostPort) && ep.terminating) continue;
      byHostPort.set(hostPort, {
        ip: ep.ip,
        port: slicePort.port,
        hostPort,
        ready: ep.ready,
        serving: ep.serving,
        terminating: ep.terminating,
        isLocal,
        zoneHints: ep.zoneHints,
        nodeHints: ep.nodeHints,
      });
    }
  }
  return [...byHostPort.values()].sort(byHostPortText);
}

/** How many endpoints endpointsForPort would return, without building them. */
export function endpointCountForPort(slices: readonly EndpointSlice[], port: ServicePortSpec, family: IPFamily): number {
  const hostPorts = new Set<string>();
  for (const slice of slices) {
    if (slice.family !== family) continue;
    const slicePort = slice.ports.find((p) => p.name === port.name && p.protocol === port.protocol);
    if (slicePort === undefined) continue;
    for (const ep of slice.endpoints) hostPorts.add(joinHostPort(ep.ip, slicePort.port));
  }
  return hostPorts.size;
}

export function byHostPortText(a: Endpoint, b: Endpoint): number {
  return a.hostPort < b.hostPort ? -1 : a.hostPort > b.hostPort ? 1 : 0;
}
