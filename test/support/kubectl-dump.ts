// Objects as `kubectl get svc,endpointslices,pods,nodes -A -o yaml` prints them: a `kind: List` whose items
// carry kind and apiVersion, the metadata the API server stamps (uid, resourceVersion, creationTimestamp,
// generateName, ownerReferences), the fields it defaults, keys in alphabetical order, and EndpointSlices as
// the controller writes them (`ports: null`, `endpoints: null` for a Service with no Pod to list).
import { createHash } from 'node:crypto';
import { Document, visit } from 'yaml';

export type K8sObject = Record<string, unknown>;

const CREATED = '2025-03-14T09:26:53Z';

function uid(seed: string): string {
  const h = createHash('sha256').update(seed).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

/** A resourceVersion that depends on the object only, so a dump is the same text however often it is built. */
function rv(seed: string): string {
  return String(40_000 + (Number.parseInt(createHash('sha256').update(seed).digest('hex').slice(0, 6), 16) % 900_000));
}

function meta(kind: string, namespace: string | undefined, name: string, extra: K8sObject = {}): K8sObject {
  return {
    creationTimestamp: CREATED,
    name,
    ...(namespace !== undefined ? { namespace } : {}),
    resourceVersion: rv(`${kind}/${namespace ?? ''}/${name}`),
    uid: uid(`${kind}/${namespace ?? ''}/${name}`),
    ...extra,
  };
}

export interface ServicePort {
  readonly name?: string;
  readonly port: number;
  readonly protocol?: 'TCP' | 'UDP' | 'SCTP';
  /** Absent: the API's default, the port itself. */
  readonly targetPort?: number | string;
  readonly nodePort?: number;
}

export interface ServiceArgs {
  readonly namespace: string;
  readonly name: string;
  /** 'None' for a headless Service. */
  readonly clusterIP: string;
  readonly clusterIPs?: readonly string[];
  /** Absent: `app: <name>`; null: no selector. */
  readonly selector?: Readonly<Record<string, string>> | null;
  readonly ports: readonly ServicePort[];
  readonly type?: 'ClusterIP' | 'NodePort' | 'LoadBalancer' | 'ExternalName';
  readonly externalName?: string;
  readonly labels?: Readonly<Record<string, string>>;
  readonly internalTrafficPolicy?: 'Cluster' | 'Local';
  readonly externalTrafficPolicy?: 'Cluster' | 'Local';
}

export function kService(a: ServiceArgs): K8sObject {
  const type = a.type ?? 'ClusterIP';
  const selector = a.selector === undefined ? { app: a.name } : a.selector;
  if (type === 'ExternalName') {
    return {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: meta('Service', a.namespace, a.name, a.labels ? { labels: a.labels } : {}),
      spec: { externalName: a.externalName ?? 'db.example.com', sessionAffinity: 'None', type },
      status: { loadBalancer: {} },
    };
  }
  const clusterIPs = a.clusterIPs ?? [a.clusterIP];
  const families = a.clusterIP === 'None' ? ['IPv4'] : clusterIPs.map((ip) => (ip.includes(':') ? 'IPv6' : 'IPv4'));
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: meta('Service', a.namespace, a.name, {
      annotations: { 'kubectl.kubernetes.io/last-applied-configuration': `{"apiVersion":"v1","kind":"Service","metadata":{"name":"${a.name}","namespace":"${a.namespace}"}}\n` },
      ...(a.labels ? { labels: a.labels } : {}),
    }),
    spec: {
      clusterIP: a.clusterIP,
      clusterIPs,
      ...(type !== 'ClusterIP' ? { externalTrafficPolicy: a.externalTrafficPolicy ?? 'Cluster' } : {}),
      internalTrafficPolicy: a.internalTrafficPolicy ?? 'Cluster',
      ipFamilies: families,
      ipFamilyPolicy: families.length > 1 ? 'RequireDualStack' : 'SingleStack',
      ports: a.ports.map((p) => ({
        ...(p.name !== undefined ? { name: p.name } : {}),
        ...(p.nodePort !== undefined ? { nodePort: p.nodePort } : {}),
        port: p.port,
        protocol: p.protocol ?? 'TCP',
        targetPort: p.targetPort ?? p.port,
      })),
      ...(selector !== null ? { selector } : {}),
      sessionAffinity: 'None',
      type,
    },
    status: { loadBalancer: {} },
  };
}

export interface SliceEndpoint {
  readonly ip: string;
  readonly node?: string;
  /** The Pod's name (targetRef); absent for an endpoint outside the cluster. */
  readonly pod?: string;
  readonly ready?: boolean;
  readonly serving?: boolean;
  readonly terminating?: boolean;
}

export interface SliceArgs {
  readonly namespace: string;
  readonly service: string;
  /** Default `<service>-<5 letters>`, as generateName makes it. */
  readonly name?: string;
  /** null: what the controller writes when no Pod resolves a port. */
  readonly ports: readonly { readonly name?: string; readonly port: number; readonly protocol?: 'TCP' | 'UDP' | 'SCTP' }[] | null;
  /** null: what the controller writes when no Pod matches. */
  readonly endpoints: readonly SliceEndpoint[] | null;
  readonly addressType?: 'IPv4' | 'IPv6';
  readonly labels?: Readonly<Record<string, string>>;
}

export function kSlice(a: SliceArgs): K8sObject {
  const name = a.name ?? `${a.service}-${uid(a.service).replace(/[^a-z]/g, '').slice(0, 5).padEnd(5, 'x')}`;
  return {
    addressType: a.addressType ?? 'IPv4',
    apiVersion: 'discovery.k8s.io/v1',
    endpoints:
      a.endpoints === null
        ? null
        : a.endpoints.map((e) => ({
            addresses: [e.ip],
            conditions: { ready: e.ready ?? true, serving: e.serving ?? e.ready ?? true, terminating: e.terminating ?? false },
            ...(e.node !== undefined ? { nodeName: e.node } : {}),
            ...(e.pod !== undefined ? { targetRef: { kind: 'Pod', name: e.pod, namespace: a.namespace, uid: uid(`Pod/${a.namespace}/${e.pod}`) } } : {}),
          })),
    kind: 'EndpointSlice',
    metadata: meta('EndpointSlice', a.namespace, name, {
      annotations: { 'endpoints.kubernetes.io/last-change-trigger-time': CREATED },
      generateName: `${a.service}-`,
      generation: 1,
      labels: { 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io', 'kubernetes.io/service-name': a.service, ...a.labels },
      ownerReferences: [{ apiVersion: 'v1', blockOwnerDeletion: true, controller: true, kind: 'Service', name: a.service, uid: uid(`Service/${a.namespace}/${a.service}`) }],
    }),
    ports: a.ports === null ? null : a.ports.map((p) => ({ name: p.name ?? '', port: p.port, protocol: p.protocol ?? 'TCP' })),
  };
}

export interface ContainerArgs {
  readonly name: string;
  readonly ports?: readonly { readonly name?: string; readonly containerPort: number; readonly protocol?: 'TCP' | 'UDP' | 'SCTP' }[];
  /** An HTTP readiness probe on this path and port. */
  readonly readiness?: { readonly path: string; readonly port: number | string };
  /** Default: the Pod's readiness. */
  readonly ready?: boolean;
  /** A waiting reason (CrashLoopBackOff ...) instead of running. */
  readonly waiting?: string;
  readonly restarts?: number;
}

export interface PodArgs {
  readonly namespace: string;
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly node?: string;
  /** Absent: the Pod has no IP yet (Pending). */
  readonly ip?: string;
  readonly ready?: boolean;
  readonly phase?: 'Pending' | 'Running' | 'Succeeded' | 'Failed';
  /** metadata.deletionTimestamp set. */
  readonly deleting?: boolean;
  readonly containers?: readonly ContainerArgs[];
}

export function kPod(a: PodArgs): K8sObject {
  const ready = a.ready ?? true;
  const phase = a.phase ?? (a.ip === undefined ? 'Pending' : 'Running');
  const containers = a.containers ?? [{ name: 'app' }];
  const cond = (type: string, status: boolean, extra: K8sObject = {}): K8sObject => ({
    lastProbeTime: null,
    lastTransitionTime: CREATED,
    ...extra,
    status: status ? 'True' : 'False',
    type,
  });
  const unready = containers.filter((c) => !(c.ready ?? ready)).map((c) => c.name);
  const notReady = unready.length > 0 ? { message: `containers with unready status: [${unready.join(' ')}]`, reason: 'ContainersNotReady' } : {};
  const podReady = ready && unready.length === 0;
  const hash = uid(a.name).slice(0, 9).replace(/-/g, 'a');
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: meta('Pod', a.namespace, a.name, {
      ...(a.deleting ? { deletionGracePeriodSeconds: 30, deletionTimestamp: '2025-03-14T10:00:00Z' } : {}),
      generateName: `${a.name.replace(/-[a-z0-9]+$/, '')}-`,
      labels: { ...a.labels, 'pod-template-hash': hash },
      ownerReferences: [{ apiVersion: 'apps/v1', blockOwnerDeletion: true, controller: true, kind: 'ReplicaSet', name: a.name.replace(/-[a-z0-9]+$/, ''), uid: uid(`rs/${a.name}`) }],
    }),
    spec: {
      containers: containers.map((c) => ({
        image: 'registry.example.com/app:1.4.2',
        imagePullPolicy: 'IfNotPresent',
        name: c.name,
        ...(c.ports ? { ports: c.ports.map((p) => ({ containerPort: p.containerPort, ...(p.name !== undefined ? { name: p.name } : {}), protocol: p.protocol ?? 'TCP' })) } : {}),
        ...(c.readiness
          ? { readinessProbe: { failureThreshold: 3, httpGet: { path: c.readiness.path, port: c.readiness.port, scheme: 'HTTP' }, periodSeconds: 10, successThreshold: 1, timeoutSeconds: 1 } }
          : {}),
        resources: {},
        terminationMessagePath: '/dev/termination-log',
        terminationMessagePolicy: 'File',
      })),
      dnsPolicy: 'ClusterFirst',
      enableServiceLinks: true,
      ...(a.node !== undefined ? { nodeName: a.node } : {}),
      preemptionPolicy: 'PreemptLowerPriority',
      priority: 0,
      restartPolicy: 'Always',
      schedulerName: 'default-scheduler',
      securityContext: {},
      serviceAccount: 'default',
      serviceAccountName: 'default',
      terminationGracePeriodSeconds: 30,
    },
    status: {
      conditions: [
        cond('PodReadyToStartContainers', a.ip !== undefined),
        cond('Initialized', true),
        cond('Ready', podReady, podReady ? {} : notReady),
        cond('ContainersReady', podReady, podReady ? {} : notReady),
        cond('PodScheduled', a.node !== undefined),
      ],
      ...(a.ip !== undefined
        ? {
            containerStatuses: containers.map((c) => ({
              containerID: `containerd://${createHash('sha256').update(a.name + c.name).digest('hex')}`,
              image: 'registry.example.com/app:1.4.2',
              imageID: 'registry.example.com/app@sha256:5f0c8a5b1e2d',
              lastState: {},
              name: c.name,
              ready: c.ready ?? ready,
              restartCount: c.restarts ?? 0,
              started: c.waiting === undefined,
              state: c.waiting !== undefined ? { waiting: { message: 'back-off 5m0s restarting failed container', reason: c.waiting } } : { running: { startedAt: CREATED } },
            })),
          }
        : {}),
      ...(a.node !== undefined ? { hostIP: '172.18.0.3', hostIPs: [{ ip: '172.18.0.3' }] } : {}),
      phase,
      ...(a.ip !== undefined ? { podIP: a.ip, podIPs: [{ ip: a.ip }] } : {}),
      qosClass: 'BestEffort',
      startTime: CREATED,
    },
  };
}

export function kNode(name: string, ip: string, zone?: string): K8sObject {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      annotations: { 'node.alpha.kubernetes.io/ttl': '0', 'volumes.kubernetes.io/controller-managed-attach-detach': 'true' },
      creationTimestamp: CREATED,
      labels: {
        'beta.kubernetes.io/arch': 'amd64',
        'beta.kubernetes.io/os': 'linux',
        'kubernetes.io/arch': 'amd64',
        'kubernetes.io/hostname': name,
        'kubernetes.io/os': 'linux',
        ...(zone !== undefined ? { 'topology.kubernetes.io/zone': zone } : {}),
      },
      name,
      resourceVersion: rv(`Node/${name}`),
      uid: uid(`Node/${name}`),
    },
    spec: { podCIDR: '10.244.1.0/24', podCIDRs: ['10.244.1.0/24'] },
    status: {
      addresses: [
        { address: ip, type: 'InternalIP' },
        { address: name, type: 'Hostname' },
      ],
      conditions: [{ lastHeartbeatTime: CREATED, lastTransitionTime: CREATED, message: 'kubelet is posting ready status', reason: 'KubeletReady', status: 'True', type: 'Ready' }],
      nodeInfo: { architecture: 'amd64', containerRuntimeVersion: 'containerd://1.7.24', kernelVersion: '6.1.0-31-amd64', kubeProxyVersion: '', kubeletVersion: 'v1.32.2', operatingSystem: 'linux', osImage: 'Debian GNU/Linux 12 (bookworm)' },
    },
  };
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(value).sort()) out[key] = sortKeys((value as Record<string, unknown>)[key]);
  return out;
}

const KIND_ORDER = ['Service', 'EndpointSlice', 'Pod', 'Node'];

function itemKey(o: K8sObject): string {
  const m = (o['metadata'] ?? {}) as Record<string, unknown>;
  const kind = KIND_ORDER.indexOf(String(o['kind']));
  return `${kind < 0 ? 9 : kind}\u0000${String(m['namespace'] ?? '')}\u0000${String(m['name'] ?? '')}`;
}

/**
 * The `kubectl get svc,endpointslices,pods,nodes -A -o yaml` text of these objects: a List of the kinds in that
 * order, each by namespace and name; keys sorted, sequences not indented, timestamps quoted (go-yaml's style).
 */
export function kubectlYaml(objects: readonly K8sObject[]): string {
  const items = [...objects].sort((a, b) => (itemKey(a) < itemKey(b) ? -1 : itemKey(a) > itemKey(b) ? 1 : 0));
  const doc = new Document(sortKeys({ apiVersion: 'v1', items, kind: 'List', metadata: { resourceVersion: '' } }));
  // go-yaml quotes strings that YAML 1.1 would read as something else: timestamps among them.
  visit(doc, {
    Scalar(_, node) {
      if (typeof node.value === 'string' && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/.test(node.value)) node.type = 'QUOTE_DOUBLE';
    },
  });
  return doc.toString({ indentSeq: false, lineWidth: 0 });
}
