import type { IPFamily } from '../../model/ip.js';
import { nodeIPsOf } from '../../model/node.js';
import { normalizeEndpointSlice } from '../../model/endpoint-slice.js';
import { type JsonObject, type Normalized, isObject, labelsOf } from '../../model/fields.js';
import { normalizeService } from '../../model/service.js';
import type { ClusterState } from '../../model/state.js';
import type { ServiceKey } from '../../model/types.js';
import { ZONE_LABEL } from '../objects.js';
import type { KubeApiClient } from './api-client.js';
import { DEFAULT_REFLECTOR_OPTIONS, Reflector, type ReflectorEvent, type ReflectorOptions, type ReflectorSink } from './reflector.js';

/** The cluster autoscaler's taint on a node it is about to delete. */
export const TO_BE_DELETED_TAINT = 'ToBeDeletedByClusterAutoscaler';

/** kube-proxy's selector on both informers: headless slices and other proxies' objects never reach us. */
export const PROXY_LABEL_SELECTOR = '!service.kubernetes.io/headless,!service.kubernetes.io/service-proxy-name';

/** The annotation the endpointslice controller sets to when the change that produced a slice happened. */
export const LAST_CHANGE_TRIGGER_TIME = 'endpoints.kubernetes.io/last-change-trigger-time';

export interface NodeInfo {
  readonly zone: string | undefined;
  /** The Node's IPs, InternalIP first (see nodeIPsOf). */
  readonly ips: readonly string[];
  /** metadata.deletionTimestamp is set: healthz reports 503 so load balancers drain the node. */
  readonly deleting: boolean;
  /** Tainted ToBeDeletedByClusterAutoscaler: also not eligible for load-balancer traffic. */
  readonly toBeDeleted: boolean;
  readonly exists: boolean;
}

export interface SourceListener {
  /** Called after the state changed (a Service or an EndpointSlice); the sync loop coalesces these. */
  changed(kind: 'service' | 'endpoints', service: ServiceKey): void;
  /** Called when this node's Node object appears, changes zone or starts being deleted. */
  nodeChanged(node: NodeInfo): void;
  /** An object the API sent that cannot be used; the previous version (if any) stays in effect. */
  rejected(resource: string, key: string, errors: readonly string[]): void;
  /** When the change behind an EndpointSlice was triggered (the annotation above), for programming latency. */
  endpointsTriggered?(service: ServiceKey, at: number, family: IPFamily): void;
  reflector?(e: ReflectorEvent): void;
}

/**
 * Watches Services, EndpointSlices (with kube-proxy's label selector) and this node's Node, and keeps a
 * ClusterState of compact records up to date. No full API object outlives its event.
 */
export class ClusterSource {
  private readonly reflectors: Reflector[];
  private node: NodeInfo = { zone: undefined, ips: [], deleting: false, toBeDeleted: false, exists: false };

  constructor(
    client: KubeApiClient,
    private readonly state: ClusterState,
    nodeName: string,
    private readonly listener: SourceListener,
    options: Partial<ReflectorOptions> = {},
  ) {
    const opts: ReflectorOptions = {
      ...DEFAULT_REFLECTOR_OPTIONS,
      ...options,
      onEvent: (e) => listener.reflector?.(e),
    };
    this.reflectors = [
      new Reflector(client, { name: 'services', path: '/api/v1/services', labelSelector: PROXY_LABEL_SELECTOR }, this.serviceSink(), opts),
      new Reflector(
        client,
        { name: 'endpointslices', path: '/apis/discovery.k8s.io/v1/endpointslices', labelSelector: PROXY_LABEL_SELECTOR },
        this.sliceSink(),
        opts,
      ),
      new Reflector(client, { name: 'nodes', path: '/api/v1/nodes', fieldSelector: `metadata.name=${nodeName}` }, this.nodeSink(nodeName), opts),
    ];
  }

  start(): void {
    for (const r of this.reflectors) r.start();
  }

  async stop(): Promise<void> {
    await Promise.all(this.reflectors.map((r) => r.stop()));
  }

  /** Services and EndpointSlices have each been listed once: a full sync now programs the real state. */
  get synced(): boolean {
    return this.reflectors.slice(0, 2).every((r) => r.hasSynced);
  }

  /** Resolves once `synced` is true (or never, if the API server is never reached). */
  whenSynced(pollMs = 20): Promise<void> {
    return new Promise((resolve) => {
      const check = (): void => {
        if (this.synced) resolve();
        else setTimeout(check, pollMs);
      };
      check();
    });
  }

  get nodeInfo(): NodeInfo {
    return this.node;
  }

  private serviceSink(): ReflectorSink {
    return {
      upsert: (key, object) => {
        const result = normalizeService(object);
        const k = key as ServiceKey;
        if (result.status === 'ok') {
          this.state.setService(result.value);
          this.listener.changed('service', result.value.key);
        } else if (result.status === 'skipped') {
          // Became headless, ExternalName or another proxy's: its rules must go.
          if (this.state.getService(k) !== undefined) {
            this.state.deleteService(k);
            this.listener.changed('service', k);
          }
        } else {
          this.listener.rejected('services', key, fieldErrors(result));
        }
      },
      remove: (key) => {
        const k = key as ServiceKey;
        if (this.state.getService(k) === undefined) return;
        this.state.deleteService(k);
        this.listener.changed('service', k);
      },
    };
  }

  private sliceSink(): ReflectorSink {
    return {
      upsert: (key, object) => {
        const result = normalizeEndpointSlice(object);
        if (result.status === 'ok') {
          const slice = result.value;
          const previous = this.state.getSlice(slice.namespace, slice.name)?.service;
          this.state.setSlice(slice);
          if (previous !== undefined && previous !== slice.service) this.listener.changed('endpoints', previous);
          const trigger = triggerTime(object);
          if (trigger !== undefined) this.listener.endpointsTriggered?.(slice.service, trigger, slice.family);
          this.listener.changed('endpoints', slice.service);
        } else if (result.status === 'skipped') {
          this.dropSlice(key);
        } else {
          this.listener.rejected('endpointslices', key, fieldErrors(result));
        }
      },
      remove: (key) => this.dropSlice(key),
    };
  }

  private dropSlice(key: string): void {
    const slash = key.indexOf('/');
    const [namespace, name] = [key.slice(0, slash), key.slice(slash + 1)];
    const owner = this.state.getSlice(namespace, name)?.service;
    if (owner === undefined) return;
    this.state.deleteSlice(namespace, name);
    this.listener.changed('endpoints', owner);
  }

  private nodeSink(nodeName: string): ReflectorSink {
    const publish = (next: NodeInfo): void => {
      const prev = this.node;
      this.node = next;
      const same =
        prev.zone === next.zone &&
        prev.ips.join(',') === next.ips.join(',') &&
        prev.deleting === next.deleting && prev.toBeDeleted === next.toBeDeleted && prev.exists === next.exists;
      if (!same) this.listener.nodeChanged(next);
    };
    return {
      upsert: (key, object) => {
        if (key === nodeName) publish(readNodeInfo(object));
      },
      remove: (key) => {
        if (key === nodeName) publish({ zone: undefined, ips: [], deleting: false, toBeDeleted: false, exists: false });
      },
      // Said once even if the Node does not exist, so health can report it (upstream: not eligible).
      synced: () => this.listener.nodeChanged(this.node),
    };
  }
}

function fieldErrors<T>(result: Normalized<T>): string[] {
  return result.status === 'invalid' ? result.errors.map((e) => `${e.field}: ${e.message}`) : [];
}

function triggerTime(object: JsonObject): number | undefined {
  const metadata = object['metadata'];
  if (!isObject(metadata) || !isObject(metadata['annotations'])) return undefined;
  const value = metadata['annotations'][LAST_CHANGE_TRIGGER_TIME];
  if (typeof value !== 'string') return undefined;
  const t = Date.parse(value);
  return Number.isNaN(t) ? undefined : t;
}

/** What the proxy needs of its Node object: the zone, and whether load balancers should drain the node. */
export function readNodeInfo(object: JsonObject): NodeInfo {
  const metadata = isObject(object['metadata']) ? object['metadata'] : undefined;
  const spec = isObject(object['spec']) ? object['spec'] : {};
  const taints = Array.isArray(spec['taints']) ? spec['taints'] : [];
  const deletion = metadata?.['deletionTimestamp'];
  return {
    zone: labelsOf(metadata).get(ZONE_LABEL),
    ips: nodeIPsOf(object),
    deleting: typeof deletion === 'string' && deletion !== '',
    toBeDeleted: taints.some((t) => isObject(t) && t['key'] === TO_BE_DELETED_TAINT),
    exists: true,
  };
}
