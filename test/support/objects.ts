/** Builders for the Service and EndpointSlice objects tests and benchmarks feed to the compiler. */

export interface PortSpec {
  readonly name?: string;
  readonly port: number;
  readonly protocol?: 'TCP' | 'UDP' | 'SCTP';
  readonly targetPort?: number | string;
  readonly nodePort?: number;
}

export interface IngressSpec {
  readonly ip?: string;
  readonly hostname?: string;
  readonly ipMode?: 'VIP' | 'Proxy';
}

export interface ServiceSpec {
  readonly namespace?: string;
  readonly name: string;
  readonly clusterIP: string;
  /** spec.clusterIPs (default `[clusterIP]`), index-matched with ipFamilies when given. */
  readonly clusterIPs?: readonly string[];
  readonly ipFamilies?: readonly ('IPv4' | 'IPv6')[];
  readonly ports: readonly PortSpec[];
  readonly type?: 'ClusterIP' | 'NodePort' | 'LoadBalancer' | 'ExternalName';
  readonly internalTrafficPolicy?: 'Cluster' | 'Local';
  readonly affinityTimeoutSeconds?: number;
  readonly labels?: Readonly<Record<string, string>>;
  readonly externalTrafficPolicy?: 'Cluster' | 'Local';
  readonly externalIPs?: readonly string[];
  readonly loadBalancerIngress?: readonly IngressSpec[];
  readonly loadBalancerSourceRanges?: readonly string[];
  readonly healthCheckNodePort?: number;
}

export type K8sObject = Record<string, unknown>;

export function service(s: ServiceSpec): K8sObject {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: s.name, namespace: s.namespace ?? 'default', ...(s.labels ? { labels: s.labels } : {}) },
    spec: {
      type: s.type ?? 'ClusterIP',
      clusterIP: s.clusterIP,
      clusterIPs: s.clusterIPs ?? (s.clusterIP === 'None' || s.clusterIP === '' ? undefined : [s.clusterIP]),
      // ipFamilies as given, else the families of clusterIPs when those are given.
      ...((s.ipFamilies ?? s.clusterIPs?.map((ip) => (ip.includes(':') ? 'IPv6' : 'IPv4'))) !== undefined
        ? (() => {
            const families = s.ipFamilies ?? s.clusterIPs!.map((ip) => (ip.includes(':') ? 'IPv6' : 'IPv4'));
            return { ipFamilies: families, ipFamilyPolicy: families.length > 1 ? 'RequireDualStack' : 'SingleStack' };
          })()
        : {}),
      selector: { app: s.name },
      ports: s.ports.map((p) => ({
        ...(p.name !== undefined ? { name: p.name } : {}),
        port: p.port,
        protocol: p.protocol ?? 'TCP',
        targetPort: p.targetPort ?? p.port,
        ...(p.nodePort !== undefined ? { nodePort: p.nodePort } : {}),
      })),
      ...(s.externalTrafficPolicy ? { externalTrafficPolicy: s.externalTrafficPolicy } : {}),
      ...(s.externalIPs ? { externalIPs: s.externalIPs } : {}),
      ...(s.loadBalancerSourceRanges ? { loadBalancerSourceRanges: s.loadBalancerSourceRanges } : {}),
      ...(s.healthCheckNodePort !== undefined ? { healthCheckNodePort: s.healthCheckNodePort } : {}),
      ...(s.internalTrafficPolicy ? { internalTrafficPolicy: s.internalTrafficPolicy } : {}),
      ...(s.affinityTimeoutSeconds !== undefined
        ? { sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: s.affinityTimeoutSeconds } } }
        : {}),
    },
    ...(s.loadBalancerIngress ? { status: { loadBalancer: { ingress: s.loadBalancerIngress } } } : {}),
  };
}

export interface EndpointSpec {
  readonly ip: string;
  readonly ready?: boolean;
  readonly serving?: boolean;
  readonly terminating?: boolean;
  readonly nodeName?: string;
  readonly zoneHints?: readonly string[];
}

export interface SliceSpec {
  readonly namespace?: string;
  readonly name: string;
  readonly service: string;
  readonly ports: readonly { readonly name?: string; readonly port: number; readonly protocol?: 'TCP' | 'UDP' | 'SCTP' }[];
  readonly endpoints: readonly EndpointSpec[];
  readonly labels?: Readonly<Record<string, string>>;
  /** IPv4 unless given. */
  readonly addressType?: 'IPv4' | 'IPv6';
}

export function endpointSlice(s: SliceSpec): K8sObject {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name: s.name,
      namespace: s.namespace ?? 'default',
      labels: { 'kubernetes.io/service-name': s.service, ...s.labels },
    },
    // As given, else the family of its endpoints (IPv4 when it has none).
    addressType: s.addressType ?? (s.endpoints.some((e) => e.ip.includes(':')) ? 'IPv6' : 'IPv4'),
    ports: s.ports.map((p) => ({ name: p.name ?? '', port: p.port, protocol: p.protocol ?? 'TCP' })),
    endpoints: s.endpoints.map((e) => ({
      addresses: [e.ip],
      conditions: {
        ready: e.ready ?? true,
        serving: e.serving ?? e.ready ?? true,
        terminating: e.terminating ?? false,
      },
      ...(e.nodeName !== undefined ? { nodeName: e.nodeName } : {}),
      ...(e.zoneHints ? { hints: { forZones: e.zoneHints.map((name) => ({ name })) } } : {}),
    })),
  };
}

/** A `kind: List` document, as `kubectl get -o json` prints it (JSON is YAML too). */
export function list(items: readonly K8sObject[]): string {
  return JSON.stringify({ apiVersion: 'v1', kind: 'List', metadata: {}, items });
}

/**
 * A synthetic cluster: `services` Services with `endpoints` ready endpoints each, one slice per Service. With
 * `nodePorts`, each is a NodePort Service, on ports from 20000 up (a widened service-node-port-range: the
 * default 30000-32767 holds only 2,768).
 */
/**
 * `services` ClusterIP Services of `endpoints` endpoints each; with `nodePorts`, NodePort Services (20000 + i); with
 * `dualStack`, each Service also has an IPv6 ClusterIP and an IPv6 slice of as many endpoints.
 */
export function syntheticCluster(services: number, endpoints: number, opts: { readonly nodePorts?: boolean; readonly dualStack?: boolean } = {}): K8sObject[] {
  const out: K8sObject[] = [];
  for (let i = 0; i < services; i++) {
    const name = `svc${i}`;
    const clusterIP = `10.96.${(i >> 8) & 255}.${i & 255}`;
    const nodePort = opts.nodePorts === true ? { nodePort: 20000 + i } : {};
    out.push(
      service({
        namespace: `ns${i % 100}`,
        name,
        clusterIP,
        ...(opts.dualStack === true ? { clusterIPs: [clusterIP, `fd00:10:96::${i.toString(16)}`] } : {}),
        ...(opts.nodePorts === true ? { type: 'NodePort' as const } : {}),
        ports: [{ name: 'http', port: 80, targetPort: 8080, ...nodePort }],
      }),
    );
    const eps: EndpointSpec[] = [];
    for (let e = 0; e < endpoints; e++) {
      const n = i * endpoints + e;
      eps.push({ ip: `10.${128 + ((n >> 16) & 127)}.${(n >> 8) & 255}.${n & 255}`, nodeName: `node-${n % 50}` });
    }
    out.push(endpointSlice({ namespace: `ns${i % 100}`, name: `${name}-abcde`, service: name, ports: [{ name: 'http', port: 8080 }], endpoints: eps }));
    if (opts.dualStack === true) {
      const eps6 = eps.map((ep, e) => ({ ...ep, ip: `fd00:10:244::${(i * endpoints + e).toString(16)}` }));
      out.push(endpointSlice({ namespace: `ns${i % 100}`, name: `${name}-v6xyz`, service: name, ports: [{ name: 'http', port: 8080 }], endpoints: eps6 }));
    }
  }
  return out;
}
