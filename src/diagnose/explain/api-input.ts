// explain's input from the API server: one-shot GETs and LISTs with the operator's credentials. Unlike the
// agent's watch, the Service is read without kube-proxy's label selector, so headless Services and other
// proxies' Services are found (and explained) too.
import { SERVICE_NAME_LABEL } from '../../model/endpoint-slice.js';
import { type JsonObject, isObject } from '../../model/fields.js';
import { ApiError, type KubeApiClient } from '../../sources/kube/api-client.js';
import type { ExplainInput } from './analyze.js';
import { objectRef } from './objects.js';

const PAGE_SIZE = '500';

/** Every item of a LIST, page by page. */
async function listAll(client: KubeApiClient, path: string, query: Readonly<Record<string, string>> = {}): Promise<JsonObject[]> {
  const items: JsonObject[] = [];
  let token: string | undefined;
  do {
    const page = await client.getJson(path, { ...query, limit: PAGE_SIZE, ...(token !== undefined ? { continue: token } : {}) });
    const list = page['items'];
    if (Array.isArray(list)) for (const item of list) if (isObject(item)) items.push(item);
    const metadata = page['metadata'];
    const next = isObject(metadata) ? metadata['continue'] : undefined;
    token = typeof next === 'string' && next !== '' ? next : undefined;
  } while (token !== undefined);
  return items;
}

/** A failed read as a short reason: `forbidden (HTTP 403)`. */
function reason(e: unknown): string {
  if (e instanceof ApiError) return e.status === 403 ? `forbidden: ${e.message}` : e.message;
  return e instanceof Error ? e.message : String(e);
}

async function orUndefined<T>(read: () => Promise<T>): Promise<T | undefined> {
  try {
    return await read();
  } catch (e) {
    if (e instanceof ApiError) return undefined;
    throw e;
  }
}

/**
 * Reads what explaining `namespace/name` needs. The Service and its slices must be readable (an ApiError
 * propagates: the CLI exits 2); Pods, the Node and the names for suggestions degrade to "not read".
 */
export async function apiInput(client: KubeApiClient, namespace: string, name: string, nodeName: string): Promise<ExplainInput> {
  const ns = encodeURIComponent(namespace);
  const source = `the API server (${client.server})`;
  let service: JsonObject | undefined;
  try {
    service = await client.getJson(`/api/v1/namespaces/${ns}/services/${encodeURIComponent(name)}`, {});
  } catch (e) {
    if (!(e instanceof ApiError) || e.status !== 404) throw e;
  }
  if (service === undefined) {
    const inNamespace = (await orUndefined(() => listAll(client, `/api/v1/namespaces/${ns}/services`))) ?? [];
    const sameName = (await orUndefined(() => listAll(client, '/api/v1/services', { fieldSelector: `metadata.name=${name}` }))) ?? [];
    return {
      source,
      service: undefined,
      slices: [],
      pods: undefined,
      podsUnavailable: 'not read',
      podsElsewhere: [],
      node: undefined,
      servicesInNamespace: inNamespace.map((o) => objectRef(o).name).sort(),
      namespacesWithName: [...new Set(sameName.map((o) => objectRef(o).namespace))].filter((n) => n !== namespace).sort(),
    };
  }
  const slices = await listAll(client, `/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices`, { labelSelector: `${SERVICE_NAME_LABEL}=${name}` });
  let pods: JsonObject[] | undefined;
  let podsUnavailable: string | undefined;
  try {
    pods = await listAll(client, `/api/v1/namespaces/${ns}/pods`);
  } catch (e) {
    if (!(e instanceof ApiError)) throw e;
    podsUnavailable = reason(e);
  }
  const node = await orUndefined(() => client.getJson(`/api/v1/nodes/${encodeURIComponent(nodeName)}`, {}));
  return { source, service, slices, pods, podsUnavailable, podsElsewhere: [], node, servicesInNamespace: [], namespacesWithName: [] };
}
