import { describe, expect, it } from 'vitest';
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

function recordEverything(m: ProxyMetrics): void {
  m.observeSync('full', 0.003);
  m.observeSync('partial', 0.0005);
  m.setLastSynced(1_700_000_000_500);
  m.setLastQueued(1_700_000_000_000);
  m.networkProgrammingDuration.observe({ ip_family: 'IPv4' }, 0.3);
  m.endpointChangesPending.set(2);
  m.endpointChangesTotal.inc(5);
  m.serviceChangesPending.set(1);
  m.serviceChangesTotal.inc(3);
  m.iptablesRestoreFailuresTotal.inc({ ip_family: 'IPv4' });
  m.iptablesPartialRestoreFailuresTotal.inc({ ip_family: 'IPv4' });
  m.setIptablesRuleCounts({ nat: { owned: 40, written: 7 }, filter: { owned: 4, written: 4 } });
  m.noLocalEndpointsTotal.set({ ip_family: 'IPv4', traffic_policy: 'internal' }, 1);
  m.proxyHealthzTotal.inc({ code: '200' });
  m.proxyLivezTotal.inc({ code: '503' });
  m.conntrackReconcilerSyncDuration.observe({ ip_family: 'IPv4' }, 0.01);
  m.conntrackReconcilerDeletedEntriesTotal.inc({ ip_family: 'IPv4' }, 3);
  m.servicesWithoutEndpoints.set(4);
  m.watchRestartsTotal.inc({ resource: 'services', reason: 'expired' });
  m.watchEventsTotal.inc({ resource: 'endpointslices', type: 'MODIFIED' }, 2);
  m.syncRetriesTotal.inc();
}

describe('ProxyMetrics', () => {
  it('exposes every kube-proxy metric with the upstream name, type, help and labels', async () => {
    const m = new ProxyMetrics({ processMetrics: false });
    recordEverything(m);
    const { contentType, body } = await m.render();
    expect(contentType).toBe('text/plain; version=0.0.4; charset=utf-8');
    const families = parseExposition(body);
    for (const [name, [type, help, labelNames]] of Object.entries(UPSTREAM)) {
      const f = families.get(name);
      expect(f, name).toBeDefined();
      expect(f?.type, name).toBe(type);
      expect(f?.help, name).toBe(help);
      const sample = f?.samples.find((s) => !s.name.endsWith('_bucket'));
      expect(Object.keys(sample?.labels ?? {}).sort(), name).toEqual([...labelNames].sort());
    }
  });

  it('uses upstream buckets', async () => {
    const m = new ProxyMetrics({ processMetrics: false });
    recordEverything(m);
    const families = parseExposition((await m.render()).body);
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

  it('records values where the agent puts them', async () => {
    const m = new ProxyMetrics({ processMetrics: false });
    recordEverything(m);
    const families = parseExposition((await m.render()).body);
    const value = (name: string, labels: Record<string, string> = {}) =>
      families.get(name)?.samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
    const count = (f: string) => families.get(f)?.samples.find((s) => s.name === `${f}_count`)?.value;
    expect(count('kubeproxy_sync_proxy_rules_duration_seconds')).toBe(2);
    expect(count('kubeproxy_sync_full_proxy_rules_duration_seconds')).toBe(1);
    expect(count('kubeproxy_sync_partial_proxy_rules_duration_seconds')).toBe(1);
    expect(value('kubeproxy_sync_proxy_rules_last_timestamp_seconds', { ip_family: 'IPv4' })).toBe(1_700_000_000.5);
    expect(value('kubeproxy_sync_proxy_rules_iptables_total', { ip_family: 'IPv4', table: 'nat' })).toBe(40);
    expect(value('kubeproxy_sync_proxy_rules_iptables_last', { ip_family: 'IPv4', table: 'nat' })).toBe(7);
    expect(value('kubeproxy_proxy_livez_total', { code: '503' })).toBe(1);
    expect(value('switchboard_services_without_endpoints')).toBe(4);
    expect(families.get('switchboard_services_without_endpoints')?.type).toBe('gauge');
    expect(value('switchboard_watch_restarts_total', { resource: 'services', reason: 'expired' })).toBe(1);
    expect(value('switchboard_watch_events_total', { resource: 'endpointslices', type: 'MODIFIED' })).toBe(2);
    expect(value('switchboard_sync_retries_total')).toBe(1);
  });

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
