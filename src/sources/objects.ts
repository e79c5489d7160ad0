import { normalizeEndpointSlice } from '../model/endpoint-slice.js';
import { type JsonObject, type Normalized, isObject, labelsOf } from '../model/fields.js';
import { nodeIPsOf } from '../model/node.js';
import { normalizeService } from '../model/service.js';
import { ClusterState } from '../model/state.js';
import type { ManifestObject } from './manifests.js';

export const ZONE_LABEL = 'topology.kubernetes.io/zone';

export interface LoadedState {
  /** Seen from `nodeName`, in the zone of the Node object of that name, if the input had one. */
  readonly state: ClusterState;
  /** One message per rejected object, naming the file, the object and every bad field. */
  readonly errors: string[];
  /** Objects deliberately not programmed (headless, ExternalName, other proxies' Services …). */
  readonly skipped: string[];
}

/**
 * Feeds manifest objects into a ClusterState. Services (v1), EndpointSlices (discovery.k8s.io/v1) and this
 * node's Node (for its zone and IPs) are read; other kinds are ignored. A bad object is rejected alone: the rest of
 * the state still compiles.
 */
export function loadObjects(objects: readonly ManifestObject[], nodeName: string): LoadedState {
  const state = new ClusterState(nodeName);
  const errors: string[] = [];
  const skipped: string[] = [];
  let nodeZone: string | undefined;
  let nodeIPs: string[] = [];
  for (const item of objects) {
    const { object } = item;
    const kind = object['kind'];
    const apiVersion = object['apiVersion'];
    const where = `${item.source} (${item.location})`;
    const label = `${typeof kind === 'string' ? kind : 'object'} ${objectName(object)}`;
    const report = <T>(result: Normalized<T>, accept: (value: T) => void): void => {
      if (result.status === 'ok') accept(result.value);
      else if (result.status === 'skipped') skipped.push(`${where}: ${label}: skipped: ${result.reason}`);
      else for (const e of result.errors) errors.push(`${where}: ${label}: ${e.field}: ${e.message}`);
    };
    if (kind === 'Service') {
      if (apiVersion !== 'v1') errors.push(`${where}: ${label}: apiVersion: "${String(apiVersion)}" is not v1`);
      else report(normalizeService(object), (s) => state.setService(s));
    } else if (kind === 'EndpointSlice') {
      if (apiVersion !== 'discovery.k8s.io/v1') {
        errors.push(`${where}: ${label}: apiVersion: "${String(apiVersion)}" is not discovery.k8s.io/v1`);
      } else report(normalizeEndpointSlice(object), (s) => state.setSlice(s));
    } else if (kind === 'Node') {
      const metadata = object['metadata'];
      if (isObject(metadata) && metadata['name'] === nodeName) {
        nodeZone = labelsOf(metadata).get(ZONE_LABEL);
        nodeIPs = nodeIPsOf(object);
      }
    } else if (typeof kind !== 'string') {
      errors.push(`${where}: ${label}: kind: required`);
    }
  }
  state.setNodeZone(nodeZone);
  state.setNodeIPs(nodeIPs);
  return { state, errors, skipped };
}

function objectName(object: JsonObject): string {
  const metadata = object['metadata'];
  if (!isObject(metadata) || typeof metadata['name'] !== 'string') return '<unnamed>';
  const ns = typeof metadata['namespace'] === 'string' ? metadata['namespace'] : 'default';
  return `${ns}/${metadata['name']}`;
}
