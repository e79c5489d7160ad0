/** The resources the test API server serves: where they live on the wire and how they are named. */

export type ResourceName = 'services' | 'endpointslices' | 'nodes' | 'pods' | 'events';

export interface ResourceDef {
  readonly resource: ResourceName;
  readonly group: string; // '' for the core group
  readonly version: string;
  readonly apiVersion: string; // 'v1' or 'group/version', as objects carry it
  readonly kind: string;
  readonly listKind: string;
  readonly singularName: string;
  readonly namespaced: boolean;
  readonly shortNames: readonly string[];
  /** Clients may POST (create) and PATCH these; everything else is read-only (405). */
  readonly writable?: boolean;
}

export const RESOURCES: Readonly<Record<ResourceName, ResourceDef>> = {
  services: {
    resource: 'services',
    group: '',
    version: 'v1',
    apiVersion: 'v1',
    kind: 'Service',
    listKind: 'ServiceList',
    singularName: 'service',
    namespaced: true,
    shortNames: ['svc'],
  },
  endpointslices: {
    resource: 'endpointslices',
    group: 'discovery.k8s.io',
    version: 'v1',
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    listKind: 'EndpointSliceList',
    singularName: 'endpointslice',
    namespaced: true,
    shortNames: [],
  },
  nodes: {
    resource: 'nodes',
    group: '',
    version: 'v1',
    apiVersion: 'v1',
    kind: 'Node',
    listKind: 'NodeList',
    singularName: 'node',
    namespaced: false,
    shortNames: ['no'],
  },
  // Read by `switchboard explain` (the agent never reads Pods).
  pods: {
    resource: 'pods',
    group: '',
    version: 'v1',
    apiVersion: 'v1',
    kind: 'Pod',
    listKind: 'PodList',
    singularName: 'pod',
    namespaced: true,
    shortNames: ['po'],
  },
  // Only events.k8s.io/v1: what the agent writes (core/v1 events are not served).
  events: {
    resource: 'events',
    group: 'events.k8s.io',
    version: 'v1',
    apiVersion: 'events.k8s.io/v1',
    kind: 'Event',
    listKind: 'EventList',
    singularName: 'event',
    namespaced: true,
    shortNames: ['ev'],
    writable: true,
  },
};

export const RESOURCE_LIST: readonly ResourceDef[] = Object.values(RESOURCES);

/** The resource an object belongs to, from its kind and apiVersion; undefined for kinds we do not serve. */
export function resourceOf(kind: unknown, apiVersion: unknown): ResourceDef | undefined {
  return RESOURCE_LIST.find((r) => r.kind === kind && r.apiVersion === apiVersion);
}

/** The resource named by a short or long name, singular or plural (as `remove()` and kubectl accept them). */
export function resourceByName(name: string): ResourceDef | undefined {
  const n = name.toLowerCase();
  return RESOURCE_LIST.find(
    (r) => r.resource === n || r.singularName === n || r.kind.toLowerCase() === n || r.shortNames.includes(n),
  );
}
