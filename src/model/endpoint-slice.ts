import { exactSize } from '../exact-size.js';
import { FieldReader, type JsonObject, type Normalized, isObject, labelsOf } from './fields.js';
import { type IPFamily, parseIP } from './ip.js';
import { SERVICE_PROXY_NAME_LABEL } from './service.js';
import { type EndpointSlice, PROTOCOLS, type SliceEndpoint, type SlicePort, serviceKey } from './types.js';

export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';
/** The endpointslice controller puts this on slices of headless Services; kube-proxy's watch excludes them. */
export const HEADLESS_LABEL = 'service.kubernetes.io/headless';

/** Turns a discovery.k8s.io/v1 EndpointSlice into the proxier's compact record. */
export function normalizeEndpointSlice(obj: JsonObject): Normalized<EndpointSlice> {
  const r = new FieldReader();
  const metadata = r.object(obj, 'metadata', 'metadata', true);
  const name = metadata && r.string(metadata, 'name', 'metadata.name', true);
  const namespace = (metadata && r.string(metadata, 'namespace', 'metadata.namespace', false)) || 'default';
  if (r.errors.length > 0 || name === undefined) return { status: 'invalid', errors: r.errors };

  const labels = labelsOf(metadata);
  if (labels.has(HEADLESS_LABEL)) return { status: 'skipped', reason: `labelled ${HEADLESS_LABEL}` };
  if (labels.has(SERVICE_PROXY_NAME_LABEL)) return { status: 'skipped', reason: `labelled ${SERVICE_PROXY_NAME_LABEL}` };
  const addressType = r.oneOf(obj, 'addressType', 'addressType', ['IPv4', 'IPv6', 'FQDN'] as const);
  if (addressType === 'FQDN') return { status: 'skipped', reason: 'FQDN slices are not proxied' };
  if (addressType === undefined && r.errors.length === 0) r.fail('addressType', 'required');
  const serviceName = labels.get(SERVICE_NAME_LABEL);
  if (serviceName === undefined || serviceName === '') {
    r.fail(`metadata.labels["${SERVICE_NAME_LABEL}"]`, 'required: it names the Service this slice belongs to');
  }
  const ports = readPorts(r, obj);
  const endpoints = addressType === undefined ? [] : readEndpoints(r, obj, addressType);
  if (r.errors.length > 0 || addressType === undefined || serviceName === undefined) {
    return { status: 'invalid', errors: r.errors };
  }
  return {
    status: 'ok',
    value: { namespace, name, service: serviceKey(namespace, serviceName), family: addressType, ports, endpoints },
  };
}

function readPorts(r: FieldReader, obj: JsonObject): SlicePort[] {
  const list = r.array(obj, 'ports', 'ports', false) ?? [];
  const ports: SlicePort[] = [];
  list.forEach((item, i) => {
    const path = `ports[${i}]`;
    if (!isObject(item)) {
      r.fail(path, 'must be an object');
      return;
    }
    const port = r.integer(item, 'port', `${path}.port`, 1, 65535);
    const name = r.string(item, 'name', `${path}.name`, false) ?? '';
    const protocol = r.oneOf(item, 'protocol', `${path}.protocol`, PROTOCOLS) ?? 'TCP';
    // A slice port without a number matches no service port; kube-proxy ignores it the same way.
    if (port !== undefined) ports.push({ name, port, protocol });
  });
  return exactSize(ports);
}

/** Shared by every endpoint without hints (nearly all of them), instead of two empty arrays each. */
const NO_HINTS: readonly string[] = Object.freeze([]);

/** A cluster has few node names and many endpoints: one string per name, not one per endpoint. */
const nodeNames = new Map<string, string>();
function internNodeName(name: string): string {
  const known = nodeNames.get(name);
  if (known !== undefined) return known;
  if (nodeNames.size > 100_000) nodeNames.clear(); // bounded: a pathological input cannot grow it forever
  nodeNames.set(name, name);
  return name;
}

function readEndpoints(r: FieldReader, obj: JsonObject, family: IPFamily): SliceEndpoint[] {
  const list = r.array(obj, 'endpoints', 'endpoints', false) ?? [];
  const endpoints: SliceEndpoint[] = [];
  list.forEach((item, i) => {
    const path = `endpoints[${i}]`;
    if (!isObject(item)) {
      r.fail(path, 'must be an object');
      return;
    }
    const addresses = r.array(item, 'addresses', `${path}.addresses`, true);
    // kube-proxy uses only the first address of an endpoint, as the API says consumers must.
    const first = addresses?.[0];
    if (addresses !== undefined && first === undefined) r.fail(`${path}.addresses`, 'must not be empty');
    let ip: string | undefined;
    if (first !== undefined) {
      const parsed = typeof first === 'string' ? parseIP(first) : undefined;
      if (parsed === undefined) r.fail(`${path}.addresses[0]`, `${JSON.stringify(first)} is not a valid IP address`);
      else if (parsed.family !== family) r.fail(`${path}.addresses[0]`, `"${first}" is not an ${family} address`);
      else ip = parsed.text;
    }
    const conditions = r.object(item, 'conditions', `${path}.conditions`, false) ?? {};
    // As kube-proxy reads them: nil ready and nil serving mean true, nil terminating means false.
    const ready = r.boolean(conditions, 'ready', `${path}.conditions.ready`) ?? true;
    const serving = r.boolean(conditions, 'serving', `${path}.conditions.serving`) ?? true;
    const terminating = r.boolean(conditions, 'terminating', `${path}.conditions.terminating`) ?? false;
    const nodeName = r.string(item, 'nodeName', `${path}.nodeName`, false);
    const hints = r.object(item, 'hints', `${path}.hints`, false);
    const zoneHints = hints ? readHintNames(r, hints, 'forZones', `${path}.hints.forZones`) : NO_HINTS;
    const nodeHints = hints ? readHintNames(r, hints, 'forNodes', `${path}.hints.forNodes`) : NO_HINTS;
    if (ip !== undefined) {
      endpoints.push({ ip, ready, serving, terminating, nodeName: nodeName === undefined ? undefined : internNodeName(nodeName), zoneHints, nodeHints });
    }
  });
  return exactSize(endpoints);
}

function readHintNames(r: FieldReader, hints: JsonObject, key: string, path: string): string[] {
  const list = r.array(hints, key, path, false) ?? [];
  const names: string[] = [];
  list.forEach((item, i) => {
    const name = isObject(item) ? r.string(item, 'name', `${path}[${i}].name`, true) : r.fail(`${path}[${i}]`, 'must be an object');
    if (name !== undefined) names.push(name);
  });
  return exactSize(names);
}
