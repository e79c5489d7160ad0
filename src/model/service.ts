import { exactSize } from '../exact-size.js';
import { FieldReader, type JsonObject, type Normalized, labelsOf } from './fields.js';
import { type IPFamily, parseIP } from './ip.js';
import {
  PROTOCOLS,
  type Protocol,
  type Service,
  type ServicePortSpec,
  type SessionAffinity,
  type TrafficPolicy,
  serviceKey,
} from './types.js';

/** Services carrying this label belong to another proxy (kube-proxy skips them too). */
export const SERVICE_PROXY_NAME_LABEL = 'service.kubernetes.io/service-proxy-name';
const DEFAULT_AFFINITY_TIMEOUT_SECONDS = 10800;
const MAX_AFFINITY_TIMEOUT_SECONDS = 86400;
const SERVICE_TYPES = ['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName'] as const;

/** Turns a v1 Service object into the proxier's compact record, or says why it is skipped or invalid. */
export function normalizeService(obj: JsonObject): Normalized<Service> {
  const r = new FieldReader();
  const metadata = r.object(obj, 'metadata', 'metadata', true);
  const name = metadata && r.string(metadata, 'name', 'metadata.name', true);
  const namespace = (metadata && r.string(metadata, 'namespace', 'metadata.namespace', false)) || 'default';
  const spec = r.object(obj, 'spec', 'spec', true);
  if (r.errors.length > 0 || !spec || name === undefined) return { status: 'invalid', errors: r.errors };

  if (labelsOf(metadata).has(SERVICE_PROXY_NAME_LABEL)) {
    return { status: 'skipped', reason: `labelled ${SERVICE_PROXY_NAME_LABEL}: served by another proxy` };
  }
  const type = r.oneOf(spec, 'type', 'spec.type', SERVICE_TYPES) ?? 'ClusterIP';
  if (type === 'ExternalName') return { status: 'skipped', reason: 'type ExternalName has no proxy rules' };
  const clusterIP = r.string(spec, 'clusterIP', 'spec.clusterIP', false);
  if (clusterIP === 'None') return { status: 'skipped', reason: 'headless (clusterIP: None)' };
  if (clusterIP === undefined || clusterIP === '') {
    if (r.errors.length > 0) return { status: 'invalid', errors: r.errors };
    return { status: 'skipped', reason: 'no cluster IP allocated' };
  }

  const clusterIPs = readClusterIPs(r, spec, clusterIP);
  const ports = readPorts(r, spec);
  const sessionAffinity = readAffinity(r, spec);
  const internalTrafficPolicy: TrafficPolicy =
    r.oneOf(spec, 'internalTrafficPolicy', 'spec.internalTrafficPolicy', ['Cluster', 'Local'] as const) ?? 'Cluster';
  const selector = r.object(spec, 'selector', 'spec.selector', false);
  if (r.errors.length > 0 || ports === undefined) return { status: 'invalid', errors: r.errors };
  return {
    status: 'ok',
    value: {
      key: serviceKey(namespace, name),
      namespace,
      name,
      clusterIPs,
      ports,
      sessionAffinity,
      internalTrafficPolicy,
      hasSelector: selector !== undefined && Object.keys(selector).length > 0,
    },
  };
}

function readClusterIPs(r: FieldReader, spec: JsonObject, clusterIP: string): Partial<Record<IPFamily, string>> {
  const out: Partial<Record<IPFamily, string>> = {};
  const list = r.array(spec, 'clusterIPs', 'spec.clusterIPs', false);
  // spec.clusterIPs[0] is spec.clusterIP by API contract; read both so hand-written manifests with only one work.
  const candidates: Array<[string, unknown]> = [['spec.clusterIP', clusterIP]];
  list?.forEach((value, i) => {
    if (value !== clusterIP) candidates.push([`spec.clusterIPs[${i}]`, value]);
  });
  for (const [field, value] of candidates) {
    if (typeof value !== 'string') {
      r.fail(field, 'must be a string');
      continue;
    }
    const ip = parseIP(value);
    if (ip === undefined) {
      r.fail(field, `"${value}" is not a valid IP address`);
      continue;
    }
    out[ip.family] ??= ip.text;
  }
  return out;
}

function readPorts(r: FieldReader, spec: JsonObject): ServicePortSpec[] | undefined {
  const list = r.array(spec, 'ports', 'spec.ports', true);
  if (list === undefined) return undefined;
  const ports: ServicePortSpec[] = [];
  const seen = new Set<string>();
  list.forEach((item, i) => {
    const path = `spec.ports[${i}]`;
    if (typeof item !== 'object' || item === null || Array.isArray(item)) {
      r.fail(path, 'must be an object');
      return;
    }
    const entry = item as JsonObject;
    const name = r.string(entry, 'name', `${path}.name`, false) ?? '';
    const port = r.integer(entry, 'port', `${path}.port`, 1, 65535);
    if (entry['port'] === undefined || entry['port'] === null) r.fail(`${path}.port`, 'required');
    const protocol: Protocol = r.oneOf(entry, 'protocol', `${path}.protocol`, PROTOCOLS) ?? 'TCP';
    const id = `${name}/${protocol}`;
    if (seen.has(id)) r.fail(`${path}.name`, `duplicate port name "${name}" for ${protocol}`);
    seen.add(id);
    if (port !== undefined) ports.push({ name, port, protocol });
  });
  return exactSize(ports);
}

/** Shared by every Service without affinity (nearly all), instead of one object each. */
const NO_AFFINITY: SessionAffinity = Object.freeze({ type: 'None' });

function readAffinity(r: FieldReader, spec: JsonObject): SessionAffinity {
  const type = r.oneOf(spec, 'sessionAffinity', 'spec.sessionAffinity', ['None', 'ClientIP'] as const) ?? 'None';
  if (type === 'None') return NO_AFFINITY;
  const config = r.object(spec, 'sessionAffinityConfig', 'spec.sessionAffinityConfig', false);
  const clientIP = config && r.object(config, 'clientIP', 'spec.sessionAffinityConfig.clientIP', false);
  const timeoutSeconds =
    (clientIP &&
      r.integer(
        clientIP,
        'timeoutSeconds',
        'spec.sessionAffinityConfig.clientIP.timeoutSeconds',
        1,
        MAX_AFFINITY_TIMEOUT_SECONDS,
      )) ??
    DEFAULT_AFFINITY_TIMEOUT_SECONDS;
  return { type, timeoutSeconds };
}
