import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';

// What an operator relies on when installing: daemonset.yaml (RBAC, placement, probes, mounts, API server
// address) and the Dockerfile (stages, tools, entrypoint). Neither can be applied or built here, so their
// text is checked against what the agent and the bundle actually need.
const root = fileURLToPath(new URL('../..', import.meta.url));
const read = (path: string) => readFileSync(`${root}${path}`, 'utf8');

// ---- small typed accessors over parsed YAML (no `any`) -------------------------------------------------------
type Json = unknown;
function get(value: Json, ...path: Array<string | number>): Json {
  let v = value;
  for (const key of path) {
    if (typeof key === 'number') v = Array.isArray(v) ? v[key] : undefined;
    else v = v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, Json>)[key] : undefined;
  }
  return v;
}
function list(value: Json, ...path: Array<string | number>): Json[] {
  const v = get(value, ...path);
  if (!Array.isArray(v)) throw new Error(`${path.join('.')}: expected a list, got ${JSON.stringify(v)}`);
  return v;
}
function text(value: Json, ...path: Array<string | number>): string {
  const v = get(value, ...path);
  if (typeof v !== 'string') throw new Error(`${path.join('.')}: expected a string, got ${JSON.stringify(v)}`);
  return v;
}
const strings = (value: Json, ...path: Array<string | number>): string[] => list(value, ...path).map((_, i) => text(value, ...path, i));

// ---- daemonset.yaml -------------------------------------------------------------------------------------------
const docs = parseAllDocuments(read('daemonset.yaml'));
const objects: Json[] = docs.map((d) => d.toJS() as Json);
const byKind = (kind: string): Json => {
  const found = objects.filter((o) => get(o, 'kind') === kind);
  if (found.length !== 1) throw new Error(`daemonset.yaml: expected exactly one ${kind}, found ${found.length}`);
  return found[0];
};
const NAMESPACE = 'switchboard-system';
const ds = byKind('DaemonSet');
const pod = get(ds, 'spec', 'template', 'spec');
const containers = list(pod, 'containers');
const container = containers[0];

/** `--flag=value` args (the style the manifest uses) as a map; the command is the first arg. */
function flags(args: string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const arg of args.slice(1)) {
    const m = /^(--[a-z-]+)(?:=(.*))?$/.exec(arg);
    if (!m?.[1]) throw new Error(`container arg ${JSON.stringify(arg)} is not --flag or --flag=value`);
    out.set(m[1], m[2] ?? 'true');
  }
  return out;
}
const args = strings(container, 'args');
const argFlags = flags(args);
const portOf = (address: string | undefined) => Number(/:(\d+)$/.exec(address ?? '')?.[1]);
const containerPort = (name: string): Json => list(container, 'ports').find((p) => get(p, 'name') === name);

describe('daemonset.yaml', () => {
  it('parses cleanly into the expected objects, all in one namespace', () => {
    for (const d of docs) expect([...d.errors, ...d.warnings]).toEqual([]);
    expect(objects.map((o) => get(o, 'kind'))).toEqual([
      'Namespace', 'ResourceQuota', 'ConfigMap', 'ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'DaemonSet',
    ]);
    expect(get(byKind('Namespace'), 'metadata', 'name')).toBe(NAMESPACE);
    for (const o of objects) {
      const clusterScoped = ['Namespace', 'ClusterRole', 'ClusterRoleBinding'].includes(String(get(o, 'kind')));
      expect(get(o, 'metadata', 'namespace'), String(get(o, 'kind'))).toBe(clusterScoped ? undefined : NAMESPACE);
    }
    // Privileged pods are refused in namespaces that enforce the baseline Pod Security Standard.
    expect(get(byKind('Namespace'), 'metadata', 'labels', 'pod-security.kubernetes.io/enforce')).toBe('privileged');
  });

  it('grants exactly what the agent calls: list/watch services and endpointslices, get/list/watch nodes, create/patch events.k8s.io events', () => {
    const granted = new Set<string>();
    for (const rule of list(byKind('ClusterRole'), 'rules')) {
      expect(get(rule, 'resourceNames')).toBeUndefined();
      for (const group of strings(rule, 'apiGroups'))
        for (const resource of strings(rule, 'resources'))
          for (const verb of strings(rule, 'verbs')) granted.add(`${group}/${resource}:${verb}`);
    }
    expect([...granted].sort()).toEqual(
      [
        '/services:list', '/services:watch',
        'discovery.k8s.io/endpointslices:list', 'discovery.k8s.io/endpointslices:watch',
        '/nodes:get', '/nodes:list', '/nodes:watch',
        'events.k8s.io/events:create', 'events.k8s.io/events:patch',
      ].sort(),
    );
  });

  it('binds that ClusterRole to the service account the DaemonSet runs as', () => {
    const binding = byKind('ClusterRoleBinding');
    const sa = byKind('ServiceAccount');
    expect(get(binding, 'roleRef')).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: get(byKind('ClusterRole'), 'metadata', 'name') });
    expect(list(binding, 'subjects')).toEqual([{ kind: 'ServiceAccount', name: get(sa, 'metadata', 'name'), namespace: NAMESPACE }]);
    expect(get(pod, 'serviceAccountName')).toBe(get(sa, 'metadata', 'name'));
    expect(get(pod, 'automountServiceAccountToken')).not.toBe(false);
  });

  it('runs on every node in the host network namespace, as node-critical, one node at a time', () => {
    expect(get(pod, 'hostNetwork')).toBe(true);
    // Never the cluster DNS: it is a Service, and this agent is what makes Services work.
    expect(get(pod, 'dnsPolicy')).toBe('ClusterFirst');
    expect(get(pod, 'priorityClassName')).toBe('system-node-critical');
    expect(list(pod, 'tolerations')).toContainEqual({ operator: 'Exists' });
    expect(get(pod, 'nodeSelector')).toEqual({ 'kubernetes.io/os': 'linux' });
    expect(get(ds, 'spec', 'updateStrategy')).toEqual({ type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1 } });
    const grace = get(pod, 'terminationGracePeriodSeconds');
    expect(typeof grace === 'number' && grace >= 10 && grace <= 60, `terminationGracePeriodSeconds ${String(grace)}`).toBe(true);
    expect(get(ds, 'spec', 'selector', 'matchLabels')).toEqual(get(ds, 'spec', 'template', 'metadata', 'labels'));
    // Critical pods outside kube-system need a quota for their priority class on clusters that limit it.
    expect(list(byKind('ResourceQuota'), 'spec', 'scopeSelector', 'matchExpressions')).toContainEqual({
      operator: 'In', scopeName: 'PriorityClass', values: [get(pod, 'priorityClassName')],
    });
  });

  it('runs one privileged container of this version with `run` and only flags the agent knows', () => {
    expect(containers).toHaveLength(1);
    const pkg = JSON.parse(read('package.json')) as { version: string };
    expect(text(container, 'image')).toBe(`switchboard:${pkg.version}`);
    expect(get(container, 'command')).toBeUndefined(); // the image's ENTRYPOINT is `switchboard`
    expect(args[0]).toBe('run');
    const known = ['--kubeconfig', '--node-name', '--cluster-cidr', '--masquerade-all', '--min-sync-period', '--sync-period',
      '--healthz-bind-address', '--metrics-bind-address', '--log-level', '--dry-run', '--backend'];
    for (const flag of argFlags.keys()) expect(known, `unknown flag ${flag}`).toContain(flag);
    expect(argFlags.has('--dry-run')).toBe(false);
    expect(get(container, 'securityContext', 'privileged')).toBe(true);
    const requests = get(container, 'resources', 'requests');
    expect(text(requests, 'cpu')).toMatch(/^\d+m$/);
    expect(text(requests, 'memory')).toMatch(/^\d+Mi$/);
  });

  it('probes /healthz (readiness) and /livez (liveness) on the port --healthz-bind-address opens', () => {
    const healthz = portOf(argFlags.get('--healthz-bind-address'));
    expect(healthz).toBe(10256);
    expect(get(containerPort('healthz'), 'containerPort')).toBe(healthz);
    for (const [probe, path] of [['readinessProbe', '/healthz'], ['livenessProbe', '/livez']] as const) {
      expect(get(container, probe, 'httpGet', 'path')).toBe(path);
      const port = get(container, probe, 'httpGet', 'port');
      expect(typeof port === 'string' ? get(containerPort(port), 'containerPort') : port, probe).toBe(healthz);
    }
    // A healthz bound to loopback would fail every probe: the kubelet probes the pod (here: node) IP.
    expect(argFlags.get('--healthz-bind-address')).toMatch(/^0\.0\.0\.0:/);
  });

  it('names the metrics port that --metrics-bind-address opens', () => {
    expect(get(containerPort('metrics'), 'containerPort')).toBe(portOf(argFlags.get('--metrics-bind-address')));
  });

  it('gets NODE_NAME from the downward API', () => {
    expect(list(container, 'env')).toContainEqual({ name: 'NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } });
  });

  it('reaches the real API server, not the kubernetes Service ClusterIP it has yet to program', () => {
    const refs = list(container, 'envFrom').map((e) => get(e, 'configMapRef', 'name'));
    expect(refs).toHaveLength(1);
    const cm = byKind('ConfigMap');
    expect(refs[0]).toBe(get(cm, 'metadata', 'name'));
    expect(Object.keys(get(cm, 'data') as object).sort()).toEqual(['KUBERNETES_SERVICE_HOST', 'KUBERNETES_SERVICE_PORT']);
    expect(text(cm, 'data', 'KUBERNETES_SERVICE_PORT')).toMatch(/^\d+$/);
    // Nothing may point the agent elsewhere: a kubeconfig flag or env would silently win over in-cluster config.
    expect(argFlags.has('--kubeconfig')).toBe(false);
    expect(list(container, 'env').map((e) => get(e, 'name'))).not.toContain('KUBECONFIG');
    expect(get(container, 'envFrom', 0, 'configMapRef', 'optional')).not.toBe(true);
  });

  it('mounts the host xtables lock (created if missing) and /lib/modules read-only', () => {
    const mounts = list(container, 'volumeMounts');
    const volumes = list(pod, 'volumes');
    const mounted = (path: string) => {
      const m = mounts.find((x) => get(x, 'mountPath') === path);
      const v = volumes.find((x) => get(x, 'name') === get(m, 'name'));
      return { readOnly: get(m, 'readOnly'), hostPath: get(v, 'hostPath') };
    };
    expect(mounted('/run/xtables.lock')).toEqual({ readOnly: undefined, hostPath: { path: '/run/xtables.lock', type: 'FileOrCreate' } });
    expect(mounted('/lib/modules')).toEqual({ readOnly: true, hostPath: { path: '/lib/modules' } });
  });
});

// ---- Dockerfile -----------------------------------------------------------------------------------------------
interface Instruction { readonly op: string; readonly args: string }
interface Stage { readonly image: string; readonly name: string | undefined; readonly body: Instruction[] }

/** Instructions with continuations joined and comments dropped, grouped by FROM. */
function parseDockerfile(source: string): Stage[] {
  const logical = source
    .split('\n')
    .filter((l) => !/^\s*#/.test(l))
    .join('\n')
    .replace(/\s*\\\n\s*/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
  const stages: Stage[] = [];
  for (const line of logical) {
    const m = /^(\w+)\s+(.*)$/.exec(line);
    if (!m?.[1] || m[2] === undefined) throw new Error(`Dockerfile: cannot parse ${JSON.stringify(line)}`);
    const op = m[1].toUpperCase();
    if (op === 'FROM') {
      const from = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(m[2]);
      if (!from?.[1]) throw new Error(`Dockerfile: bad FROM ${m[2]}`);
      stages.push({ image: from[1], name: from[2], body: [] });
    } else {
      const stage = stages.at(-1);
      if (stage === undefined) throw new Error(`Dockerfile: ${op} before FROM`);
      stage.body.push({ op, args: m[2] });
    }
  }
  return stages;
}
const stages = parseDockerfile(read('Dockerfile'));
const build = stages[0];
const runtime = stages.at(-1);
const ops = (stage: Stage | undefined, op: string) => (stage?.body ?? []).filter((i) => i.op === op).map((i) => i.args);
const BUNDLE_IN_IMAGE = '/usr/local/lib/switchboard/switchboard.mjs';

describe('Dockerfile', () => {
  it('is multi-stage, every stage on Node 24', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    for (const s of stages) expect(s.image).toMatch(/^node:24(-[a-z-]+)?$/);
    expect(build?.name).toBeDefined();
  });

  it('builds the bundle with the lockfile in the build stage', () => {
    const runs = ops(build, 'RUN');
    expect(runs.some((r) => /^npm ci\b/.test(r))).toBe(true);
    expect(runs.some((r) => /^npm run bundle\b/.test(r))).toBe(true);
    expect(ops(build, 'COPY')).toContainEqual('package.json package-lock.json ./');
  });

  it('installs all six netfilter tools in the runtime stage', () => {
    const install = ops(runtime, 'RUN').join(' ');
    const pkgs = /apt-get install ([^&]*)/.exec(install)?.[1]?.split(/\s+/) ?? [];
    for (const tool of ['iptables', 'ipset', 'ipvsadm', 'conntrack', 'nftables', 'iproute2']) expect(pkgs).toContain(tool);
  });

  it('copies only the bundle that `npm run bundle` writes into the runtime stage', () => {
    const pkg = JSON.parse(read('package.json')) as { scripts: Record<string, string> };
    const outfile = /--outfile=(\S+)/.exec(pkg.scripts['bundle'] ?? '')?.[1];
    expect(outfile, 'package.json bundle script has --outfile').toBeDefined();
    expect(pkg.scripts['bundle']).toContain('--bundle');
    const workdir = ops(build, 'WORKDIR').at(-1);
    expect(ops(runtime, 'COPY')).toEqual([`--from=${build?.name ?? '?'} ${workdir ?? '?'}/${outfile ?? '?'} ${BUNDLE_IN_IMAGE}`]);
    expect(ops(runtime, 'ADD')).toEqual([]);
  });

  it('makes `switchboard` a command that execs node on the bundle, runs as root, `run` by default', async () => {
    const line = ops(runtime, 'RUN').find((r) => r.includes('/usr/local/bin/switchboard'));
    const format = /^printf '([^']*)' > \/usr\/local\/bin\/switchboard && chmod 0755 \/usr\/local\/bin\/switchboard$/.exec(line ?? '')?.[1];
    expect(format, `entrypoint RUN line: ${line ?? '(missing)'}`).toBeDefined();
    // Let a real shell expand it, as the image build does.
    const { stdout } = await execa('sh', ['-c', `printf '${format ?? ''}'`], { stripFinalNewline: false });
    expect(stdout).toBe(`#!/bin/sh\nexec node ${BUNDLE_IN_IMAGE} "$@"\n`);
    expect(ops(runtime, 'ENTRYPOINT')).toEqual(['["switchboard"]']);
    expect(ops(runtime, 'CMD')).toEqual(['["run"]']);
    expect(ops(runtime, 'USER').at(-1) ?? 'root').toBe('root');
  });

  it('.dockerignore keeps host build output out of the context but not what the build stage copies', () => {
    const ignored = read('.dockerignore').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
    expect(ignored).toContain('node_modules');
    expect(ignored).toContain('dist');
    const copied = ops(build, 'COPY').flatMap((c) => c.split(/\s+/).slice(0, -1));
    for (const path of copied) expect(ignored, path).not.toContain(path);
    expect(copied.sort()).toEqual(['package-lock.json', 'package.json', 'src', 'tsconfig.json']);
  });
});
