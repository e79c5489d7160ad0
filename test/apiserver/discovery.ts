import { RESOURCE_LIST, type ResourceDef } from './resources.js';

/** Legacy (non-aggregated) discovery documents: enough for kubectl to map `services`/`svc` to a path. */

const VERBS = ['get', 'list', 'watch'] as const;
const WRITE_VERBS = ['create', 'patch'] as const;

export function version(): Record<string, unknown> {
  return {
    major: '1',
    minor: '32',
    gitVersion: 'v1.32.0-switchboard-test',
    gitCommit: '0000000000000000000000000000000000000000',
    gitTreeState: 'clean',
    buildDate: '2026-01-01T00:00:00Z',
    goVersion: 'go1.23.0',
    compiler: 'gc',
    platform: 'linux/amd64',
  };
}

export function apiVersions(): Record<string, unknown> {
  return {
    kind: 'APIVersions',
    versions: ['v1'],
    serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: '127.0.0.1:6443' }],
  };
}

function groups(): Map<string, ResourceDef[]> {
  const out = new Map<string, ResourceDef[]>();
  for (const r of RESOURCE_LIST) {
    if (r.group === '') continue;
    const list = out.get(r.group) ?? [];
    list.push(r);
    out.set(r.group, list);
  }
  return out;
}

function apiGroup(name: string, defs: readonly ResourceDef[]): Record<string, unknown> {
  const versions = [...new Set(defs.map((d) => d.version))].map((v) => ({ groupVersion: `${name}/${v}`, version: v }));
  return { kind: 'APIGroup', apiVersion: 'v1', name, versions, preferredVersion: versions[0] };
}

export function apiGroupList(): Record<string, unknown> {
  const list = [...groups()].map(([name, defs]) => {
    const { kind: _k, apiVersion: _a, ...g } = apiGroup(name, defs);
    return g;
  });
  return { kind: 'APIGroupList', apiVersion: 'v1', groups: list };
}

/** The APIGroup document for `/apis/{group}`, or undefined for a group we do not serve. */
export function apiGroupDoc(group: string): Record<string, unknown> | undefined {
  const defs = groups().get(group);
  return defs ? apiGroup(group, defs) : undefined;
}

/** The APIResourceList for `/api/v1` or `/apis/{group}/{version}`, or undefined when nothing is served there. */
export function apiResourceList(group: string, version: string): Record<string, unknown> | undefined {
  const defs = RESOURCE_LIST.filter((r) => r.group === group && r.version === version);
  if (defs.length === 0) return undefined;
  return {
    kind: 'APIResourceList',
    apiVersion: 'v1',
    groupVersion: group === '' ? version : `${group}/${version}`,
    resources: defs.map((d) => ({
      name: d.resource,
      singularName: d.singularName,
      namespaced: d.namespaced,
      kind: d.kind,
      verbs: d.writable ? [...WRITE_VERBS, ...VERBS] : VERBS,
      ...(d.shortNames.length > 0 ? { shortNames: d.shortNames } : {}),
    })),
  };
}
