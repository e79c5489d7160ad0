import type { KubeObject } from './store.js';
import type { ResourceDef } from './resources.js';

/**
 * meta.k8s.io/v1 Table output (what kubectl asks for with `Accept: application/json;as=Table;...`),
 * with the columns of upstream's printers (pkg/printers/internalversion) for our three kinds.
 */

interface Column {
  readonly name: string;
  readonly type: 'string' | 'integer';
  readonly format: string;
  readonly description: string;
  readonly priority: number;
}

type Cell = string | number;

function col(name: string, priority = 0, format = ''): Column {
  return { name, type: 'string', format, description: name, priority };
}

/** Go's duration.HumanDuration, as the AGE column prints it. */
export function humanDuration(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < -1) return '<invalid>';
  if (s < 0) return '0s';
  if (s < 120) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 10) return s % 60 === 0 ? `${m}m` : `${m}m${s % 60}s`;
  if (m < 180) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 8) return m % 60 === 0 ? `${h}h` : `${h}h${m % 60}m`;
  if (h < 48) return `${h}h`;
  if (h < 24 * 8) return h % 24 === 0 ? `${Math.floor(h / 24)}d` : `${Math.floor(h / 24)}d${h % 24}h`;
  if (h < 24 * 365 * 2) return `${Math.floor(h / 24)}d`;
  const y = Math.floor(h / 24 / 365);
  if (h < 24 * 365 * 8) return `${y}y${Math.floor(h / 24) % 365}d`;
  return `${y}y`;
}

function rec(v: unknown): KubeObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as KubeObject) : {};
}

function arr(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}

function str(v: unknown, fallback = ''): string {
  return typeof v === 'string' ? v : typeof v === 'number' ? String(v) : fallback;
}

function age(obj: KubeObject): string {
  const t = Date.parse(str(rec(obj['metadata'])['creationTimestamp']));
  return Number.isNaN(t) ? '<unknown>' : humanDuration(Date.now() - t);
}

function serviceCells(obj: KubeObject): Cell[] {
  const spec = rec(obj['spec']);
  const type = str(spec['type'], 'ClusterIP');
  const externalIPs = arr(spec['externalIPs']).map((x) => str(x));
  let external: string;
  if (type === 'LoadBalancer') {
    const ingress = arr(rec(rec(obj['status'])['loadBalancer'])['ingress']).map((i) => str(rec(i)['ip']) || str(rec(i)['hostname']));
    const all = [...ingress, ...externalIPs].filter((x) => x !== '');
    external = all.length > 0 ? all.join(',') : '<pending>';
  } else if (type === 'ExternalName') {
    external = str(spec['externalName']);
  } else {
    external = externalIPs.length > 0 ? externalIPs.join(',') : '<none>';
  }
  const ports = arr(spec['ports']).map((p) => {
    const port = rec(p);
    const nodePort = typeof port['nodePort'] === 'number' && port['nodePort'] !== 0 ? `:${port['nodePort']}` : '';
    return `${str(port['port'])}${nodePort}/${str(port['protocol'], 'TCP')}`;
  });
  const selector = Object.entries(rec(spec['selector']))
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([k, v]) => `${k}=${str(v)}`);
  return [
    type,
    str(spec['clusterIP'], '<none>') || '<none>',
    external,
    ports.length > 0 ? ports.join(',') : '<none>',
    age(obj),
    selector.length > 0 ? selector.join(',') : '<none>',
  ];
}

function sliceCells(obj: KubeObject): Cell[] {
  const ports = arr(obj['ports']).map((p) => str(rec(p)['port']));
  const addrs = arr(obj['endpoints']).flatMap((e) => arr(rec(e)['addresses']).map((a) => str(a)));
  const shown = addrs.slice(0, 3).join(',') + (addrs.length > 3 ? ` + ${addrs.length - 3} more...` : '');
  return [str(obj['addressType']), ports.length > 0 ? ports.join(',') : '<unset>', addrs.length > 0 ? shown : '<unset>', age(obj)];
}

function nodeCells(obj: KubeObject): Cell[] {
  const status = rec(obj['status']);
  const ready = arr(status['conditions']).map(rec).find((c) => c['type'] === 'Ready');
  const state = ready === undefined ? 'Unknown' : ready['status'] === 'True' ? 'Ready' : 'NotReady';
  const roles = Object.keys(rec(rec(obj['metadata'])['labels']))
    .filter((k) => k.startsWith('node-role.kubernetes.io/'))
    .map((k) => k.slice('node-role.kubernetes.io/'.length))
    .sort();
  return [state, roles.length > 0 ? roles.join(',') : '<none>', age(obj), str(rec(status['nodeInfo'])['kubeletVersion'])];
}

const COLUMNS: Readonly<Record<string, { readonly columns: readonly Column[]; readonly cells: (o: KubeObject) => Cell[] }>> = {
  Service: {
    columns: [col('Type'), col('Cluster-IP'), col('External-IP'), col('Port(s)'), col('Age'), col('Selector', 1)],
    cells: serviceCells,
  },
  EndpointSlice: { columns: [col('AddressType'), col('Ports'), col('Endpoints'), col('Age')], cells: sliceCells },
  Node: { columns: [col('Status'), col('Roles'), col('Age'), col('Version')], cells: nodeCells },
};

export type IncludeObject = 'None' | 'Metadata' | 'Object';

function rowObject(def: ResourceDef, obj: KubeObject, include: IncludeObject): KubeObject | undefined {
  if (include === 'None') return undefined;
  if (include === 'Object') return { kind: def.kind, apiVersion: def.apiVersion, ...obj };
  return { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: obj['metadata'] };
}

/** A Table of `objects` (without kind/apiVersion, as stored). Watches send one per event, headers only on the first. */
export function toTable(
  def: ResourceDef,
  objects: readonly KubeObject[],
  opts: { resourceVersion?: string; continue?: string; include: IncludeObject; headers: boolean },
): KubeObject {
  const spec = COLUMNS[def.kind];
  const columns = [col('Name', 0, 'name'), ...(spec?.columns ?? [col('Age')])];
  return {
    kind: 'Table',
    apiVersion: 'meta.k8s.io/v1',
    metadata: {
      ...(opts.resourceVersion !== undefined ? { resourceVersion: opts.resourceVersion } : {}),
      ...(opts.continue !== undefined ? { continue: opts.continue } : {}),
    },
    columnDefinitions: opts.headers ? columns : [],
    rows: objects.map((o) => {
      const object = rowObject(def, o, opts.include);
      return {
        cells: [str(rec(o['metadata'])['name']), ...(spec ? spec.cells(o) : [age(o)])],
        ...(object !== undefined ? { object } : {}),
      };
    }),
  };
}
