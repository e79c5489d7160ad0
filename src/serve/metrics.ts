// The agent's Prometheus metrics. kube-proxy's metrics (pkg/proxy/metrics/metrics.go) keep their
// upstream names, help texts, types, buckets and labels so existing dashboards and alerts work;
// Switchboard's own carry the switchboard_ prefix. Each instance owns its registry (never the
// global one), so tests and embedders can create several.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics, exponentialBuckets, linearBuckets } from 'prom-client';

/** Upstream: metrics.ExponentialBuckets(0.001, 2, 15), i.e. 1ms .. 16.384s. */
const SYNC_BUCKETS = exponentialBuckets(0.001, 2, 15);

/**
 * Upstream: metrics.MergeBuckets(LinearBuckets(0.25, 0.25, 2), LinearBuckets(1, 1, 59),
 * LinearBuckets(60, 5, 12), LinearBuckets(120, 30, 7)); MergeBuckets starts from a 0 bucket.
 */
const NETWORK_PROGRAMMING_BUCKETS = [
  0,
  ...linearBuckets(0.25, 0.25, 2),
  ...linearBuckets(1, 1, 59),
  ...linearBuckets(60, 5, 12),
  ...linearBuckets(120, 30, 7),
];


export interface ProxyMetricsOptions {
  /** Register prom-client's process and Node.js runtime collectors (default true). */
  processMetrics?: boolean;
}

export class ProxyMetrics {
  readonly registry = new Registry();

  // kube-proxy, all backends
  readonly syncProxyRulesDuration: Histogram<'ip_family'>;
  readonly syncProxyRulesLastTimestamp: Gauge<'ip_family'>;
  readonly syncProxyRulesLastQueuedTimestamp: Gauge<'ip_family'>;
  readonly networkProgrammingDuration: Histogram<'ip_family'>;
  readonly endpointChangesPending: Gauge;
  readonly endpointChangesTotal: Counter;
  readonly serviceChangesPending: Gauge;
  readonly serviceChangesTotal: Counter;
  readonly noLocalEndpointsTotal: Gauge<'ip_family' | 'traffic_policy'>;
  readonly proxyHealthzTotal: Counter<'code'>;
  readonly proxyLivezTotal: Counter<'code'>;
  readonly conntrackReconcilerSyncDuration: Histogram<'ip_family'>;
  readonly conntrackReconcilerDeletedEntriesTotal: Counter<'ip_family'>;

  // kube-proxy, iptables mode
  readonly syncFullProxyRulesDuration: Histogram<'ip_family'>;
  readonly syncPartialProxyRulesDuration: Histogram<'ip_family'>;
  readonly iptablesRestoreFailuresTotal: Counter<'ip_family'>;
  readonly iptablesPartialRestoreFailuresTotal: Counter<'ip_family'>;
  readonly iptablesRulesTotal: Gauge<'ip_family' | 'table'>;
  readonly iptablesRulesLast: Gauge<'ip_family' | 'table'>;

  // kube-proxy, nftables mode
  readonly nftablesSyncFailuresTotal: Counter<'ip_family'>;

  // Switchboard's own
  readonly servicesWithoutEndpoints: Gauge;
  readonly watchRestartsTotal: Counter<'resource' | 'reason'>;
  readonly watchEventsTotal: Counter<'resource' | 'type'>;
  readonly syncRetriesTotal: Counter;

  constructor(opts: ProxyMetricsOptions = {}) {
    const registers = [this.registry];
    const histogram = <L extends string>(name: string, help: string, labelNames: readonly L[], buckets: number[]) =>
      new Histogram<L>({ name, help, labelNames, buckets, registers });
    const gauge = <L extends string>(name: string, help: string, labelNames: readonly L[]) =>
      new Gauge<L>({ name, help, labelNames, registers });
    const counter = <L extends string>(name: string, help: string, labelNames: readonly L[]) =>
      new Counter<L>({ name, help, labelNames, registers });
    const fam = ['ip_family'] as const;

    this.syncProxyRulesDuration = histogram('kubeproxy_sync_proxy_rules_duration_seconds', 'SyncProxyRules latency in seconds', fam, SYNC_BUCKETS);
    this.syncFullProxyRulesDuration = histogram(
      'kubeproxy_sync_full_proxy_rules_duration_seconds',
      'SyncProxyRules latency in seconds for full resyncs',
      fam,
      SYNC_BUCKETS,
    );
    this.syncPartialProxyRulesDuration = histogram(
      'kubeproxy_sync_partial_proxy_rules_duration_seconds',
      'SyncProxyRules latency in seconds for partial resyncs',
      fam,
      SYNC_BUCKETS,
    );
    this.syncProxyRulesLastTimestamp = gauge(
      'kubeproxy_sync_proxy_rules_last_timestamp_seconds',
      'The last time proxy rules were successfully synced',
      fam,
    );
    this.syncProxyRulesLastQueuedTimestamp = gauge(
      'kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds',
      'The last time a sync of proxy rules was queued',
      fam,
    );
    this.networkProgrammingDuration = histogram(
      'kubeproxy_network_programming_duration_seconds',
      'In Cluster Network Programming Latency in seconds',
      fam,
      NETWORK_PROGRAMMING_BUCKETS,
    );
    this.endpointChangesPending = gauge('kubeproxy_sync_proxy_rules_endpoint_changes_pending', 'Pending proxy rules Endpoint changes', []);
    this.endpointChangesTotal = counter('kubeproxy_sync_proxy_rules_endpoint_changes_total', 'Cumulative proxy rules Endpoint changes', []);
    this.serviceChangesPending = gauge('kubeproxy_sync_proxy_rules_service_changes_pending', 'Pending proxy rules Service changes', []);
    this.serviceChangesTotal = counter('kubeproxy_sync_proxy_rules_service_changes_total', 'Cumulative proxy rules Service changes', []);
    this.iptablesRestoreFailuresTotal = counter(
      'kubeproxy_sync_proxy_rules_iptables_restore_failures_total',
      'Cumulative proxy iptables restore failures',
      fam,
    );
    this.iptablesPartialRestoreFailuresTotal = counter(
      'kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total',
      'Cumulative proxy iptables partial restore failures',
      fam,
    );
    this.iptablesRulesTotal = gauge('kubeproxy_sync_proxy_rules_iptables_total', 'Total number of iptables rules owned by kube-proxy', [
      'ip_family',
      'table',
    ]);
    this.iptablesRulesLast = gauge('kubeproxy_sync_proxy_rules_iptables_last', 'Number of iptables rules written by kube-proxy in last sync', [
      'ip_family',
      'table',
    ]);
    this.nftablesSyncFailuresTotal = counter(
      'kubeproxy_sync_proxy_rules_nftables_sync_failures_total',
      'Cumulative proxy nftables sync failures',
      fam,
    );
    this.noLocalEndpointsTotal = gauge(
      'kubeproxy_sync_proxy_rules_no_local_endpoints_total',
      'Number of services with a Local traffic policy and no endpoints',
      ['ip_family', 'traffic_policy'],
    );
    this.proxyHealthzTotal = counter('kubeproxy_proxy_healthz_total', 'Cumulative proxy healthz HTTP status', ['code']);
    this.proxyLivezTotal = counter('kubeproxy_proxy_livez_total', 'Cumulative proxy livez HTTP status', ['code']);
    this.conntrackReconcilerSyncDuration = histogram(
      'kubeproxy_conntrack_reconciler_sync_duration_seconds',
      'ReconcileConntrackFlowsLatency latency in seconds',
      fam,
      SYNC_BUCKETS,
    );
    this.conntrackReconcilerDeletedEntriesTotal = counter(
      'kubeproxy_conntrack_reconciler_deleted_entries_total',
      'Cumulative conntrack flows deleted by conntrack reconciler',
      fam,
    );

    this.servicesWithoutEndpoints = gauge(
      'switchboard_services_without_endpoints',
      'Services with a selector and no endpoints (their cluster IPs reject connections)',
      [],
    );
    this.watchRestartsTotal = counter(
      'switchboard_watch_restarts_total',
      'Watches of the API server restarted, by resource and reason (expired, error, closed, ...)',
      ['resource', 'reason'],
    );
    this.watchEventsTotal = counter('switchboard_watch_events_total', 'Watch events received, by resource and event type', [
      'resource',
      'type',
    ]);
    this.syncRetriesTotal = counter('switchboard_sync_retries_total', 'Syncs scheduled again after a failed sync', []);

    if (opts.processMetrics ?? true) collectDefaultMetrics({ register: this.registry });
  }

  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
