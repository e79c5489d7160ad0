// Diagnostic readers of full API objects. The agent's model (src/model) keeps only what the rules need and
// drops selectors, targetPorts and Pods on purpose; `explain` needs them to say *why*. These readers are
// lenient: a field of the wrong type is treated as absent, since validation is the model's job (the target
// Service and its slices also go through normalizeService / normalizeEndpointSlice).
import { type JsonObject, isObject, labelsOf } from '../../model/fields.js';
import { parseIP } from '../../model/ip.js';
import { PROTOCOLS, type Protocol } from '../../model/types.js';

export interface DetailPort {
  readonly name: string;
  readonly port: number;
  readonly protocol: Protocol;
  /** `spec.ports[].targetPort` as written: a number, a port name, or the port itself when absent (the API's default). */
  readonly targetPort: number | string;
  readonly nodePort: number;
}

export interface ServiceDetails {
  readonly namespace: string;
  readonly name: string;
  readonly labels: ReadonlyMap<string, string>;
  readonly type: string;
  /** `spec.clusterIP`: an address, `None` (headless), or '' when unset. */
  readonly clusterIP: string;
  readonly externalName: string | undefined;
  /** `spec.selector`; empty when the Service has none (its endpoints come from hand-made EndpointSlices). */
  readonly selector: ReadonlyMap<string, string>;
  readonly ports: readonly DetailPort[];
  readonly publishNotReadyAddresses: boolean;
}

function str(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

function int(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isInteger(value) ? value : undefined;
}

function arr(value: unknown): readonly unknown[] {
  return Array.isArray(value) ? value : [];
}

function obj(value: unknown): JsonObject {
  return isObject(value) ? value : {};
}

function protocolOf(value: unknown): Protocol {
  const p = str(value);
  return p !== undefined && (PROTOCOLS as readonly string[]).includes(p) ? (p as Protocol) : 'TCP';
}

/** `metadata.namespace` and `metadata.name` ('default' when the namespace is absent, as kubectl applies it). */
export function objectRef(o: JsonObject): { namespace: string; name: string } {
  const m = obj(o['metadata']);
  return { namespace: str(m['namespace']) || 'default', name: str(m['name']) ?? '' };
}

export function readServiceDetails(o: JsonObject): ServiceDetails {
  const { namespace, name } = objectRef(o);
  const spec = obj(o['spec']);
  const selector = new Map<string, string>();
  for (const [k, v] of Object.entries(obj(spec['selector']))) if (typeof v === 'string') selector.set(k, v);
  const ports: DetailPort[] = [];
  for (const item of arr(spec['ports'])) {
    const p = obj(item);
    const port = int(p['port']);
    if (port === undefined) continue;
    const target = p['targetPort'];
    const targetPort = typeof target === 'string' && target !== '' ? (/^\d+$/.test(target) ? Number(target) : target) : int(target) || port;
    ports.push({ name: str(p['name']) ?? '', port, protocol: protocolOf(p['protocol']), targetPort, nodePort: int(p['nodePort']) ?? 0 });
  }
  return {
    namespace,
    name,
    labels: labelsOf(obj(o['metadata'])),
    type: str(spec['type']) ?? 'ClusterIP',
    clusterIP: str(spec['clusterIP']) ?? '',
    externalName: str(spec['externalName']),
    selector,
    ports,
    publishNotReadyAddresses: spec['publishNotReadyAddresses'] === true,
  };
}

export interface ContainerPort {
  readonly name: string;
  readonly containerPort: number;
  readonly protocol: Protocol;
}

export interface ContainerInfo {
  readonly name: string;
  readonly ports: readonly ContainerPort[];
  /** The readiness probe, as `GET :8081/healthz`, `TCP :5432`, `exec`, `gRPC :9000`; undefined without one. */
  readonly readinessProbe: string | undefined;
  /** From status.containerStatuses; undefined when the status does not list the container. */
  readonly ready: boolean | undefined;
  /** `state.waiting.reason` (CrashLoopBackOff, ImagePullBackOff...), or `terminated: <reason>`. */
  readonly state: string | undefined;
  readonly restarts: number;
}

export interface PodInfo {
  readonly namespace: string;
  readonly name: string;
  readonly labels: ReadonlyMap<string, string>;
  readonly nodeName: string | undefined;
  readonly phase: string;
  /** status.podIPs (or podIP), canonical. */
  readonly ips: readonly string[];
  /** metadata.deletionTimestamp is set. */
  readonly deleting: boolean;
  /** The Ready condition is True (upstream's IsPodReady). */
  readonly ready: boolean;
  /** The Ready condition's reason and message when it is not True, e.g. `ContainersNotReady: containers with unready status: [app]`. */
  readonly notReadyReason: string | undefined;
  /** Regular containers, then restartable init containers (sidecars), whose ports FindPort also reads. */
  readonly containers: readonly ContainerInfo[];
}

function probeText(probe: unknown): string | undefined {
  if (!isObject(probe)) return undefined;
  const port = (p: JsonObject): string => {
    const v = p['port'];
    return typeof v === 'number' || typeof v === 'string' ? String(v) : '?';
  };
  if (isObject(probe['httpGet'])) return `GET :${port(probe['httpGet'])}${str(probe['httpGet']['path']) ?? '/'}`;
  if (isObject(probe['tcpSocket'])) return `TCP :${port(probe['tcpSocket'])}`;
  if (isObject(probe['grpc'])) return `gRPC :${port(probe['grpc'])}`;
  if (isObject(probe['exec'])) {
    const command = arr(probe['exec']['command']).filter((c): c is string => typeof c === 'string');
    return command.length > 0 ? `exec ${command.join(' ')}` : 'exec';
  }
  return undefined;
}

function containerState(status: JsonObject): string | undefined {
  const state = obj(status['state']);
  const waiting = obj(state['waiting']);
  if (str(waiting['reason'])) return str(waiting['reason']);
  const terminated = obj(state['terminated']);
  if (str(terminated['reason'])) return `terminated: ${str(terminated['reason'])}`;
  return undefined;
}

export function readPod(o: JsonObject): PodInfo {
  const { namespace, name } = objectRef(o);
  const metadata = obj(o['metadata']);
  const spec = obj(o['spec']);
  const status = obj(o['status']);
  const ips: string[] = [];
  const ipTexts = [...arr(status['podIPs']).map((p) => str(obj(p)['ip'])), str(status['podIP'])];
  for (const text of ipTexts) {
    const ip = text === undefined ? undefined : parseIP(text);
    if (ip !== undefined && !ips.includes(ip.text)) ips.push(ip.text);
  }
  const readyCondition = arr(status['conditions']).map(obj).find((c) => c['type'] === 'Ready');
  const ready = readyCondition?.['status'] === 'True';
  let notReadyReason: string | undefined;
  if (!ready && readyCondition !== undefined) {
    const parts = [str(readyCondition['reason']), str(readyCondition['message'])].filter((p): p is string => p !== undefined && p !== '');
    notReadyReason = parts.length > 0 ? parts.join(': ') : undefined;
  }
  const statuses = new Map<string, JsonObject>();
  for (const s of [...arr(status['containerStatuses']), ...arr(status['initContainerStatuses'])].map(obj)) {
    const n = str(s['name']);
    if (n !== undefined) statuses.set(n, s);
  }
  const containerInfo = (c: JsonObject): ContainerInfo => {
    const cname = str(c['name']) ?? '';
    const s = statuses.get(cname);
    const ports: ContainerPort[] = [];
    for (const item of arr(c['ports'])) {
      const p = obj(item);
      const containerPort = int(p['containerPort']);
      if (containerPort !== undefined) ports.push({ name: str(p['name']) ?? '', containerPort, protocol: protocolOf(p['protocol']) });
    }
    return {
      name: cname,
      ports,
      readinessProbe: probeText(c['readinessProbe']),
      ready: s === undefined ? undefined : s['ready'] === true,
      state: s === undefined ? undefined : containerState(s),
      restarts: (s && int(s['restartCount'])) ?? 0,
    };
  };
  const containers = arr(spec['containers']).map(obj).map(containerInfo);
  // Sidecars (init containers with restartPolicy Always) serve ports too, and upstream's FindPort reads them.
  const sidecars = arr(spec['initContainers']).map(obj).filter((c) => c['restartPolicy'] === 'Always').map(containerInfo);
  return {
    namespace,
    name,
    labels: labelsOf(metadata),
    nodeName: str(spec['nodeName']),
    phase: str(status['phase']) ?? 'Unknown',
    ips,
    deleting: metadata['deletionTimestamp'] !== undefined && metadata['deletionTimestamp'] !== null,
    ready,
    notReadyReason,
    containers: [...containers, ...sidecars],
  };
}

/** Upstream's IsPodTerminal: a Pod that has Succeeded or Failed runs no more and is never an endpoint. */
export function isTerminal(pod: PodInfo): boolean {
  return pod.phase === 'Succeeded' || pod.phase === 'Failed';
}

/**
 * Upstream's ShouldPodBeInEndpoints as the EndpointSlice controller calls it (terminating Pods included):
 * not terminal, and an IP assigned.
 */
export function isEndpointCandidate(pod: PodInfo): boolean {
  return !isTerminal(pod) && pod.ips.length > 0;
}

/**
 * Upstream's FindPort (k8s.io/kubernetes/pkg/api/v1/pod): a numeric targetPort is itself; a named one is the
 * containerPort of the first container port with that name *and* the service port's protocol.
 */
export function findPort(pod: PodInfo, port: DetailPort): number | undefined {
  if (typeof port.targetPort === 'number') return port.targetPort;
  for (const c of pod.containers) {
    for (const p of c.ports) if (p.name === port.targetPort && p.protocol === port.protocol) return p.containerPort;
  }
  return undefined;
}

/** What an EndpointSlice says beyond the model: which Pod each address belongs to, and whether `ports` is empty. */
export interface SliceDetails {
  readonly name: string;
  readonly addressType: string;
  /** The ports as `name port/PROTOCOL` (`<unset>` when null or empty, as kubectl prints it). */
  readonly ports: readonly { readonly name: string; readonly port: number | undefined; readonly protocol: Protocol }[];
  readonly endpointCount: number;
  /** First address -> targetRef Pod name. */
  readonly pods: ReadonlyMap<string, string>;
}

export function readSliceDetails(o: JsonObject): SliceDetails {
  const pods = new Map<string, string>();
  const endpoints = arr(o['endpoints']).map(obj);
  for (const ep of endpoints) {
    const first = str(arr(ep['addresses'])[0]);
    const ip = first === undefined ? undefined : parseIP(first);
    const ref = obj(ep['targetRef']);
    if (ip !== undefined && ref['kind'] === 'Pod' && str(ref['name'])) pods.set(ip.text, str(ref['name']) ?? '');
  }
  return {
    name: objectRef(o).name,
    addressType: str(o['addressType']) ?? '',
    ports: arr(o['ports'])
      .map(obj)
      .map((p) => ({ name: str(p['name']) ?? '', port: int(p['port']), protocol: protocolOf(p['protocol']) })),
    endpointCount: endpoints.length,
    pods,
  };
}
