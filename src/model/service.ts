import { exactSize } from '../exact-size.js';
import { FieldReader, type JsonObject, type Normalized, labelsOf } from './fields.js';
import { type IPFamily, parseCidrMasked, parseIP } from './ip.js';
import {
  type AddressesByFamily,
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
  const eTP = r.oneOf(spec, 'externalTrafficPolicy', 'spec.externalTrafficPolicy', ['Cluster', 'Local'] as const) ?? 'Cluster';
  const externalIPs = readAddresses(r, spec, 'externalIPs', 'spec.externalIPs', (text) => parseIP(text));
  const loadBalancerIPs = readIngressIPs(r, obj);
  const loadBalancerSourceRanges = readAddresses(r, spec, 'loadBalancerSourceRanges', 'spec.loadBalancerSourceRanges', (text) =>
    parseCidrMasked(text.trim()),
  );
  // The API's notion of "externally accessible", not this family's: upstream's ExternalPolicyLocal reads the spec.
  const apiExternal = type !== 'ClusterIP' || Object.keys(externalIPs).length > 0;
  const externalTrafficPolicy: TrafficPolicy = eTP === 'Local' && apiExternal ? 'Local' : 'Cluster';
  const hcnp = r.integer(spec, 'healthCheckNodePort', 'spec.healthCheckNodePort', 0, 65535) ?? 0;
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
      type,
      externalTrafficPolicy,
      externalIPs,
      loadBalancerIPs,
      loadBalancerSourceRanges,
      healthCheckNodePort: type === 'LoadBalancer' && externalTrafficPolicy === 'Local' ? hcnp : 0,
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
    const nodePort = r.integer(entry, 'nodePort', `${path}.nodePort`, 0, 65535) ?? 0;
    const id = `${name}/${protocol}`;
    if (seen.has(id)) r.fail(`${path}.name`, `duplicate port name "${name}" for ${protocol}`);
    seen.add(id);
    if (port !== undefined) ports.push({ name, port, protocol, nodePort });
  });
  return exactSize(ports);
}

/** Shared by every Service without addresses of a kind (nearly all), instead of one empty object each. */
const NO_ADDRESSES: AddressesByFamily = Object.freeze({});

/**
 * A list of addresses (or CIDRs) by family. Entries that do not parse are dropped, not rejected: upstream
 * ignores them too, and one bad external IP must not cost the Service its ClusterIP.
 */
function readAddresses(
  r: FieldReader,
  parent: JsonObject,
  key: string,
  path: string,
  parse: (text: string) => { readonly family: IPFamily; readonly text: string } | undefined,
): AddressesByFamily {
  const list = r.array(parent, key, path, false);
  if (list === undefined || list.length === 0) return NO_ADDRESSES;
  const out: Partial<Record<IPFamily, string[]>> = {};
  list.forEach((value, i) => {
    if (typeof value !== 'string') {
      r.fail(`${path}[${i}]`, 'must be a string');
      return;
    }
    const parsed = parse(value);
    if (parsed === undefined) return;
    const family = (out[parsed.family] ??= []);
    if (!family.includes(parsed.text)) family.push(parsed.text);
  });
  return Object.keys(out).length === 0 ? NO_ADDRESSES : out;
}

/** `status.loadBalancer.ingress[].ip`, except hostname-only entries and those with ipMode Proxy (the LB proxies itself). */
function readIngressIPs(r: FieldReader, obj: JsonObject): AddressesByFamily {
  const status = r.object(obj, 'status', 'status', false);
  const lb = status && r.object(status, 'loadBalancer', 'status.loadBalancer', false);
  const ingress = lb && r.array(lb, 'ingress', 'status.loadBalancer.ingress', false);
  if (ingress === undefined || ingress.length === 0) return NO_ADDRESSES;
  const ips: string[] = [];
  ingress.forEach((item, i) => {
    const path = `status.loadBalancer.ingress[${i}]`;
    if (typeof item !== 'object' || item === null || Array.isArray(item)) {
      r.fail(path, 'must be an object');
      return;
    }
    const entry = item as JsonObject;
    const ip = r.string(entry, 'ip', `${path}.ip`, false) ?? '';
    const mode = r.oneOf(entry, 'ipMode', `${path}.ipMode`, ['VIP', 'Proxy'] as const);
    if (ip !== '' && mode !== 'Proxy') ips.push(ip);
  });
  return readAddresses(r, { ips }, 'ips', 'status.loadBalancer.ingress[].ip', (text) => parseIP(text));
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
