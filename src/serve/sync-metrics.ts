// Where the agent's kube-proxy and Switchboard metrics come from: the sync loop's reports, the conntrack
// reconciler's results and the API watches' events, each mapped to its metrics here, once.
import type { BackendName } from '../backends/backend.js';
import type { IPFamily } from '../model/ip.js';
import type { ReflectorEvent } from '../sources/kube/reflector.js';
import type { ReconcileResult } from '../sync/conntrack.js';
import type { SyncHooks } from '../sync/hooks.js';
import type { ProxyMetrics } from './metrics.js';

/** The tools whose failures kube-proxy counts as iptables-restore failures (both of its modes that use it). */
const RESTORE_TOOLS: ReadonlySet<string> = new Set(['iptables-restore', 'ip6tables-restore']);

/** The sync loop's reports as kube-proxy's metrics (and Switchboard's own), for a backend in one family. */
export function syncMetrics(metrics: ProxyMetrics, backend: BackendName, family: IPFamily, now: () => number = Date.now): Partial<SyncHooks> {
  const fam = { ip_family: family };
  return {
    queued: (kind) => {
      metrics.syncProxyRulesLastQueuedTimestamp.set(fam, now() / 1000);
      if (kind === 'service') {
        metrics.serviceChangesPending.inc();
        metrics.serviceChangesTotal.inc();
      } else {
        metrics.endpointChangesPending.inc();
        metrics.endpointChangesTotal.inc();
      }
    },
    synced: (r) => {
      const seconds = r.durationMs / 1000;
      metrics.syncProxyRulesDuration.observe(fam, seconds);
      (r.full ? metrics.syncFullProxyRulesDuration : metrics.syncPartialProxyRulesDuration).observe(fam, seconds);
      metrics.syncProxyRulesLastTimestamp.set(fam, now() / 1000);
      metrics.serviceChangesPending.set(0);
      metrics.endpointChangesPending.set(0);
      for (const [table, n] of Object.entries(r.outcome.ruleTotals)) metrics.iptablesRulesTotal.set({ ...fam, table }, n);
      for (const [table, n] of Object.entries(r.outcome.rulesWritten)) metrics.iptablesRulesLast.set({ ...fam, table }, n);
    },
    failed: (r) => {
      metrics.syncRetriesTotal.inc();
      // As kube-proxy: nftables mode counts its failed transactions; iptables mode (and IPVS mode, for its
      // iptables part) count failed restores, and the partial ones apart.
      if (backend === 'nftables') metrics.nftablesSyncFailuresTotal.inc(fam);
      else if (backend === 'iptables' || RESTORE_TOOLS.has(r.failure.tool)) {
        metrics.iptablesRestoreFailuresTotal.inc(fam);
        if (!r.full) metrics.iptablesPartialRestoreFailuresTotal.inc(fam);
      }
    },
    noEndpoints: (_service, _change, total) => metrics.servicesWithoutEndpoints.set(total),
    noLocalEndpoints: (policy, total) => metrics.noLocalEndpointsTotal.set({ ...fam, traffic_policy: policy }, total),
    programmed: (_service, seconds) => metrics.networkProgrammingDuration.observe(fam, seconds),
  };
}

/** One stale-UDP-flow cleanup, counted. */
export function conntrackMetrics(metrics: ProxyMetrics, family: IPFamily): (r: ReconcileResult) => void {
  return (r) => {
    metrics.conntrackReconcilerSyncDuration.observe({ ip_family: family }, r.durationMs / 1000);
    metrics.conntrackReconcilerDeletedEntriesTotal.inc({ ip_family: family }, r.deleted);
  };
}

/** The API watches' events, counted. */
export function reflectorMetrics(metrics: ProxyMetrics): (e: ReflectorEvent) => void {
  return (e) => {
    switch (e.kind) {
      case 'event':
        metrics.watchEventsTotal.inc({ resource: e.resource, type: e.type });
        return;
      case 'watch-ended':
        metrics.watchRestartsTotal.inc({ resource: e.resource, reason: e.reason });
        return;
      case 'relist':
        metrics.watchRestartsTotal.inc({ resource: e.resource, reason: 'expired' });
        return;
      case 'retry':
        metrics.watchRestartsTotal.inc({ resource: e.resource, reason: 'error' });
        return;
      case 'listed':
      case 'watching':
        return;
    }
  };
}
