import { beforeAll, describe, expect, it } from 'vitest';
import { IptablesBackend } from '../../src/backends/iptables/backend.js';
import { defaultIptablesOptions } from '../../src/backends/iptables/options.js';
import { ToolError } from '../../src/kernel/exec.js';
import { ClusterState } from '../../src/model/state.js';
import { serviceKey } from '../../src/model/types.js';
import { ProxyHealth } from '../../src/serve/health.js';
import { startHealthServer } from '../../src/serve/http.js';
import { conntrackMetrics, reflectorMetrics, syncMetrics } from '../../src/serve/sync-metrics.js';
import type { ReflectorEvent } from '../../src/sources/kube/reflector.js';
import { ConntrackReconciler } from '../../src/sync/conntrack.js';
import { combineHooks } from '../../src/sync/hooks.js';
import { SyncLoop } from '../../src/sync/loop.js';
import { setObject } from '../support/compile.js';
import { FakeApplier, FakeKernel } from '../support/fakes/kernel.js';
import { type K8sObject, endpointSlice, service } from '../support/objects.js';
import { ProxyMetrics } from '../../src/serve/metrics.js';

interface Family {
  help: string;
  type: string;
  samples: Array<{ name: string; labels: Record<string, string>; value: number }>;
}

/** Minimal Prometheus text-format parser: enough to check names, help, types, labels and values. */
function parseExposition(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const family = (name: string): Family => {
    let f = families.get(name);
    if (f === undefined) families.set(name, (f = { help: '', type: '', samples: [] }));
    return f;
  };
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const meta = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
    if (meta !== null) {
      const [, kind, name, rest] = meta as unknown as [string, string, string, string];
      if (kind === 'HELP') family(name).help = rest;
      else family(name).type = rest;
      continue;
    }
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (sample === null) throw new Error(`unparsable exposition line: ${line}`);
    const [, name, labelText, value] = sample as unknown as [string, string, string | undefined, string];
    const labels: Record<string, string> = {};
    for (const m of (labelText ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[m[1] ?? ''] = m[2] ?? '';
    const base = [...families.keys()].find((f) => name === f || name === `${f}_bucket` || name === `${f}_sum` || name === `${f}_count`);
    if (base === undefined) throw new Error(`sample ${name} has no # TYPE line before it`);
    family(base).samples.push({ name, labels, value: Number(value) });
  }
  return families;
}

// Upstream pkg/proxy/metrics/metrics.go: name → [type, help, label names].
const UPSTREAM: Record<string, [string, string, string[]]> = {
  kubeproxy_sync_proxy_rules_duration_seconds: ['histogram', 'SyncProxyRules latency in seconds', ['ip_family']],
  kubeproxy_sync_full_proxy_rules_duration_seconds: ['histogram', 'SyncProxyRules latency in seconds for full resyncs', ['ip_family']],
  kubeproxy_sync_partial_proxy_rules_duration_seconds: ['histogram', 'SyncProxyRules latency in seconds for partial resyncs', ['ip_family']],
  kubeproxy_sync_proxy_rules_last_timestamp_seconds: ['gauge', 'The last time proxy rules were successfully synced', ['ip_family']],
  kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds: ['gauge', 'The last time a sync of proxy rules was queued', ['ip_family']],
  kubeproxy_network_programming_duration_seconds: ['histogram', 'In Cluster Network Programming Latency in seconds', ['ip_family']],
  kubeproxy_sync_proxy_rules_endpoint_changes_pending: ['gauge', 'Pending proxy rules Endpoint changes', []],
  kubeproxy_sync_proxy_rules_endpoint_changes_total: ['counter', 'Cumulative proxy rules Endpoint changes', []],
  kubeproxy_sync_proxy_rules_service_changes_pending: ['gauge', 'Pending proxy rules Service changes', []],
  kubeproxy_sync_proxy_rules_service_changes_total: ['counter', 'Cumulative proxy rules Service changes', []],
  kubeproxy_sync_proxy_rules_iptables_restore_failures_total: ['counter', 'Cumulative proxy iptables restore failures', ['ip_family']],
  kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total: [
    'counter',
    'Cumulative proxy iptables partial restore failures',
    ['ip_family'],
  ],
  kubeproxy_sync_proxy_rules_iptables_total: ['gauge', 'Total number of iptables rules owned by kube-proxy', ['ip_family', 'table']],
  kubeproxy_sync_proxy_rules_iptables_last: ['gauge', 'Number of iptables rules written by kube-proxy in last sync', ['ip_family', 'table']],
  kubeproxy_sync_proxy_rules_no_local_endpoints_total: [
    'gauge',
    'Number of services with a Local traffic policy and no endpoints',
    ['ip_family', 'traffic_policy'],
  ],
  kubeproxy_proxy_healthz_total: ['counter', 'Cumulative proxy healthz HTTP status', ['code']],
  kubeproxy_proxy_livez_total: ['counter', 'Cumulative proxy livez HTTP status', ['code']],
  kubeproxy_conntrack_reconciler_sync_duration_seconds: ['histogram', 'ReconcileConntrackFlowsLatency latency in seconds', ['ip_family']],
  kubeproxy_conntrack_reconciler_deleted_entries_total: ['counter', 'Cumulative conntrack flows deleted by conntrack reconciler', ['ip_family']],
};

/**
 * The agent's metrics wiring (serve/sync-metrics.ts), fed by what the agent really runs: a SyncLoop over the iptables
 * backend applying to a fake kernel, one refused partial sync, a UDP Service's conntrack cleanup, watch events, and
 * requests to the health server. Nothing here sets a metric directly.
 */
async function runAgentParts(): Promise<ProxyMetrics> {
  const m = new ProxyMetrics({ processMetrics: false });
  const state = new ClusterState('node-a');
  const backend = new IptablesBackend(defaultIptablesOptions({ clusterCidr: '10.244.0.0/16' }));
  let refuse = false;
  const applier = new FakeApplier(new FakeKernel(), (step) =>
    refuse && step.tool.name === 'iptables-restore'
      ? ((refuse = false), new ToolError({ code: 'TOOL_REFUSED', what: 'iptables-restore', reason: 'exit code 1', command: 'iptables-restore', tool: 'iptables-restore' }))
      : undefined,
  );
  const conntrack = new ConntrackReconciler('IPv4', {
    run: async (args) => ({ exitCode: 0, stdout: args[0] === '-L' ? STALE_UDP_FLOW : '', stderr: 'conntrack v1.4.7 (conntrack-tools): 1 flow entries have been deleted.' }),
  });
  const countConntrack = conntrackMetrics(m, 'IPv4');
  const hooks = combineHooks(syncMetrics(m, 'iptables', 'IPv4'), {
    afterApply: async (changed) => {
      const r = await conntrack.afterApply(changed, state);
      if (r !== undefined) countConntrack(r);
    },
  });
  const loop = new SyncLoop(state, [{ family: 'IPv4', backend, hooks }], {
    minSyncPeriodMs: 0,
    syncPeriodMs: 60_000,
    canaryPeriodMs: 60_000,
    retry: { initialMs: 1, maxMs: 1 },
    applier,
    readKernel: false,
  });
  const change = (obj: K8sObject, kind: 'service' | 'endpoints'): void => {
    setObject(state, obj);
    loop.changed(kind);
  };
  loop.start();
  change(service({ name: 'dns', clusterIP: '10.96.0.10', ports: [{ name: 'dns', port: 53, protocol: 'UDP' }] }), 'service');
  change(endpointSlice({ name: 'dns-1', service: 'dns', ports: [{ name: 'dns', port: 53, protocol: 'UDP' }], endpoints: [{ ip: '10.244.1.5', nodeName: 'node-a' }] }), 'endpoints');
  // Local policies (internal and external), endpoints only elsewhere: a no-local-endpoints port for each. No
  // endpoints at all: a Service without endpoints.
  change(
    service({
      name: 'local',
      type: 'NodePort',
      clusterIP: '10.96.0.11',
      ports: [{ port: 80, nodePort: 30080 }],
      internalTrafficPolicy: 'Local',
      externalTrafficPolicy: 'Local',
    }),
    'service',
  );
  change(endpointSlice({ name: 'local-1', service: 'local', ports: [{ port: 80 }], endpoints: [{ ip: '10.244.2.5', nodeName: 'node-b' }] }), 'endpoints');
  change(service({ name: 'empty', clusterIP: '10.96.0.12', ports: [{ port: 80 }] }), 'service');
  await loop.idle();
  // A partial sync.
  change(endpointSlice({ name: 'local-1', service: 'local', ports: [{ port: 80 }], endpoints: [{ ip: '10.244.2.6', nodeName: 'node-b' }] }), 'endpoints');
  await loop.idle();
  // A partial sync the kernel refuses, then the full sync that follows; and a change with its trigger time.
  refuse = true;
  loop.triggered(serviceKey('default', 'dns'), Date.now() - 300);
  change(endpointSlice({ name: 'dns-1', service: 'dns', ports: [{ name: 'dns', port: 53, protocol: 'UDP' }], endpoints: [{ ip: '10.244.1.6', nodeName: 'node-a' }] }), 'endpoints');
  await loop.idle();
  await loop.stop();

  const countWatch = reflectorMetrics(m);
  for (const e of WATCH_EVENTS) countWatch(e);
  const health = new ProxyHealth({ healthTimeoutMs: 1000 });
  const server = await startHealthServer({ host: '127.0.0.1', port: 0 }, health, m);
  try {
    for (const path of ['/healthz', '/livez']) await fetch(`http://127.0.0.1:${server.address.port}${path}`).then((r) => r.text());
  } finally {
    await server.close();
  }
  return m;
}

/** A UDP flow to the dns Service DNAT'ed to an endpoint it no longer has. */
const STALE_UDP_FLOW = 'udp      17 29 src=10.244.9.9 dst=10.96.0.10 sport=5353 dport=53 src=10.244.1.5 dst=10.244.9.9 sport=53 dport=5353 mark=0 use=1';

const WATCH_EVENTS: ReflectorEvent[] = [
  { kind: 'event', resource: 'endpointslices', type: 'MODIFIED' },
  { kind: 'event', resource: 'endpointslices', type: 'MODIFIED' },
  { kind: 'relist', resource: 'services', reason: 'expired' },
];

describe('the agent\'s metrics', () => {
  let families: Map<string, Family>;
  beforeAll(async () => {
    families = parseExposition((await (await runAgentParts()).render()).body);
  });

  it('exposes every kube-proxy metric with the upstream name, type, help and labels, each one set by the agent', () => {
    for (const [name, [type, help, labelNames]] of Object.entries(UPSTREAM)) {
      const f = families.get(name);
      expect(f, name).toBeDefined();
      expect(f?.type, name).toBe(type);
      expect(f?.help, name).toBe(help);
      const sample = f?.samples.find((s) => !s.name.endsWith('_bucket'));
      expect(sample, `${name} was never set`).toBeDefined();
      expect(Object.keys(sample?.labels ?? {}).sort(), name).toEqual([...labelNames].sort());
    }
  });

  it('registers no metric the agent leaves unset', () => {
    // nftables mode's failure counter is the agent's too, in that mode (next test).
    const otherMode = new Set(['kubeproxy_sync_proxy_rules_nftables_sync_failures_total']);
    const unset = [...families].filter(([name, f]) => f.samples.length === 0 && !otherMode.has(name)).map(([name]) => name);
    expect(unset).toEqual([]);
  });

  it('uses upstream buckets', () => {
    const les = (name: string) =>
      families
        .get(name)
        ?.samples.filter((s) => s.name === `${name}_bucket`)
        .map((s) => s.labels['le']);
    const exp = ['0.001', '0.002', '0.004', '0.008', '0.016', '0.032', '0.064', '0.128', '0.256', '0.512', '1.024', '2.048', '4.096', '8.192', '16.384', '+Inf'];
    expect(les('kubeproxy_sync_proxy_rules_duration_seconds')).toEqual(exp);
    expect(les('kubeproxy_sync_full_proxy_rules_duration_seconds')).toEqual(exp);
    expect(les('kubeproxy_conntrack_reconciler_sync_duration_seconds')).toEqual(exp);
    const np = les('kubeproxy_network_programming_duration_seconds') ?? [];
    expect(np.slice(0, 5)).toEqual(['0', '0.25', '0.5', '1', '2']);
    expect(np.slice(-4)).toEqual(['240', '270', '300', '+Inf']);
    expect(np).toHaveLength(1 + 2 + 59 + 12 + 7 + 1);
  });

  it('records what happened: syncs, the refused restore, rule counts, endpoint gaps, conntrack, watches, probes', () => {
    const value = (name: string, labels: Record<string, string> = {}) =>
      families.get(name)?.samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
    const count = (f: string) => families.get(f)?.samples.find((s) => s.name === `${f}_count`)?.value;
    const fam = { ip_family: 'IPv4' };
    // The first full sync, a partial one, the refused partial one's retry (full) — each a duration sample.
    expect(count('kubeproxy_sync_full_proxy_rules_duration_seconds')).toBe(2);
    expect(count('kubeproxy_sync_partial_proxy_rules_duration_seconds')).toBeGreaterThanOrEqual(1);
    expect(value('kubeproxy_sync_proxy_rules_iptables_restore_failures_total', fam)).toBe(1);
    expect(value('kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total', fam)).toBe(1);
    expect(value('switchboard_sync_retries_total')).toBe(1);
    // More than the five fixed nat rules: the Services' own are counted too.
    expect(value('kubeproxy_sync_proxy_rules_iptables_total', { ...fam, table: 'nat' })).toBeGreaterThan(5);
    expect(value('kubeproxy_sync_proxy_rules_iptables_last', { ...fam, table: 'filter' })).toBeGreaterThan(0);
    expect(value('kubeproxy_sync_proxy_rules_no_local_endpoints_total', { ...fam, traffic_policy: 'internal' })).toBe(1);
    expect(value('kubeproxy_sync_proxy_rules_no_local_endpoints_total', { ...fam, traffic_policy: 'external' })).toBe(1);
    expect(value('switchboard_services_without_endpoints')).toBe(1);
    expect(value('kubeproxy_sync_proxy_rules_service_changes_total')).toBe(3);
    expect(value('kubeproxy_sync_proxy_rules_endpoint_changes_total')).toBe(4);
    expect(value('kubeproxy_sync_proxy_rules_endpoint_changes_pending')).toBe(0);
    expect(count('kubeproxy_network_programming_duration_seconds')).toBe(1);
    expect(value('kubeproxy_conntrack_reconciler_deleted_entries_total', fam)).toBe(1);
    expect(value('switchboard_watch_events_total', { resource: 'endpointslices', type: 'MODIFIED' })).toBe(2);
    expect(value('switchboard_watch_restarts_total', { resource: 'services', reason: 'expired' })).toBe(1);
    expect(value('kubeproxy_proxy_healthz_total', { code: '200' })).toBe(1);
    expect(value('kubeproxy_proxy_livez_total', { code: '200' })).toBe(1);
  });

  it('counts a failed nftables transaction as kube-proxy\'s nftables mode does', async () => {
    const m = new ProxyMetrics({ processMetrics: false });
    const failure = new ToolError({ code: 'TOOL_REFUSED', what: 'nft -f', reason: 'exit code 1', command: 'nft -f -', tool: 'nft' });
    syncMetrics(m, 'nftables', 'IPv4').failed?.({ failure, full: false, durationMs: 1, retryInMs: 1000 });
    const f = parseExposition((await m.render()).body);
    expect(f.get('kubeproxy_sync_proxy_rules_nftables_sync_failures_total')?.samples[0]?.value).toBe(1);
    expect(f.get('kubeproxy_sync_proxy_rules_iptables_restore_failures_total')?.samples).toEqual([]);
  });
});

describe('ProxyMetrics', () => {
  it('keeps instances apart and adds process metrics to its own registry only', async () => {
    const a = new ProxyMetrics();
    const b = new ProxyMetrics();
    a.syncRetriesTotal.inc();
    const fa = parseExposition((await a.render()).body);
    const fb = parseExposition((await b.render()).body);
    expect(fa.get('switchboard_sync_retries_total')?.samples[0]?.value).toBe(1);
    expect(fb.get('switchboard_sync_retries_total')?.samples[0]?.value).toBe(0);
    expect(fa.get('process_cpu_seconds_total')?.type).toBe('counter');
    expect(fb.get('process_resident_memory_bytes')?.type).toBe('gauge');
  });
});
