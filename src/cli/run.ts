import { createBackend } from './backend-factory.js';
import type { ProxyConfig } from './config.js';
import { UsageError } from './errors.js';
import { parseDuration } from '../duration.js';
import { type LogLevel, type Logger, createLogger } from '../log.js';
import { ClusterState } from '../model/state.js';
import type { ServiceKey } from '../model/types.js';
import { DEFAULT_HEALTHZ_PORT, DEFAULT_METRICS_PORT, parseBindAddress } from '../serve/bind-address.js';
import { ProxyHealth } from '../serve/health.js';
import { type RunningServer, startHealthServer, startMetricsServer } from '../serve/http.js';
import { ProxyMetrics } from '../serve/metrics.js';
import { KubeApiClient } from '../sources/kube/api-client.js';
import { ClusterSource, type NodeInfo, TO_BE_DELETED_TAINT } from '../sources/kube/cluster-source.js';
import { KubeconfigError, loadKubeConfig } from '../sources/kube/kubeconfig.js';
import type { ReflectorEvent } from '../sources/kube/reflector.js';
import { ConntrackReconciler } from '../sync/conntrack.js';
import { type Applier, KernelApplier, PrintApplier } from '../sync/applier.js';
import { SyncLoop, type SyncHooks } from '../sync/loop.js';

export interface RunFlags {
  readonly kubeconfig?: string | undefined;
  readonly minSyncPeriod: string;
  readonly syncPeriod: string;
  readonly healthzBindAddress: string;
  readonly metricsBindAddress: string;
  readonly logLevel: LogLevel;
  readonly dryRun: boolean;
}

/** How often the canary chains are checked, at most: a flush from outside is repaired within this. */
const MAX_CANARY_PERIOD_MS = 5_000;

/**
 * `switchboard run`: the node agent. Watches the API server, keeps the kernel programmed, serves health and
 * metrics, and on SIGTERM/SIGINT stops without removing a rule, so traffic keeps flowing across restarts.
 * Resolves with the exit code once stopped.
 */
export async function runAgent(config: ProxyConfig, flags: RunFlags, print: (text: string) => void): Promise<number> {
  const minSyncPeriodMs = durationFlag('--min-sync-period', flags.minSyncPeriod, 0);
  const syncPeriodMs = durationFlag('--sync-period', flags.syncPeriod, 1);
  const healthAddr = bindFlag('--healthz-bind-address', flags.healthzBindAddress, DEFAULT_HEALTHZ_PORT);
  const metricsAddr = bindFlag('--metrics-bind-address', flags.metricsBindAddress, DEFAULT_METRICS_PORT);
  const { kc, origin } = kubeconfigOrUsage(flags.kubeconfig);
  const log = createLogger(flags.logLevel);
  const client = new KubeApiClient(kc);
  log.info(
    { node: config.nodeName, backend: config.backend, apiServer: client.server, kubeconfig: origin, dryRun: flags.dryRun, minSyncPeriodMs, syncPeriodMs },
    'starting',
  );

  // A dry run never touches the machine: kube-proxy's defaults stand in for what would be read from it.
  const { backend, iptablesMode } = await createBackend(config, { dryRun: flags.dryRun });
  if (iptablesMode !== undefined) log.info({ mode: iptablesMode.mode, reason: iptablesMode.reason }, 'iptables mode chosen');

  const metrics = new ProxyMetrics();
  const health = new ProxyHealth({ healthTimeoutMs: 2 * syncPeriodMs });
  const servers: RunningServer[] = [];
  const state = new ClusterState(config.nodeName);
  const family = config.family;
  const conntrack = new ConntrackReconciler(family);
  const udpServices = new Set<ServiceKey>();

  const hooks: SyncHooks = {
    queued: (kind) => {
      health.queuedUpdate(family);
      metrics.syncProxyRulesLastQueuedTimestamp.set({ ip_family: family }, Date.now() / 1000);
      if (kind === 'service') {
        metrics.serviceChangesPending.inc();
        metrics.serviceChangesTotal.inc();
      } else {
        metrics.endpointChangesPending.inc();
        metrics.endpointChangesTotal.inc();
      }
    },
    synced: (r) => {
      health.updated(family);
      const seconds = r.durationMs / 1000;
      metrics.syncProxyRulesDuration.observe({ ip_family: family }, seconds);
      (r.full ? metrics.syncFullProxyRulesDuration : metrics.syncPartialProxyRulesDuration).observe({ ip_family: family }, seconds);
      metrics.syncProxyRulesLastTimestamp.set({ ip_family: family }, Date.now() / 1000);
      metrics.serviceChangesPending.set(0);
      metrics.endpointChangesPending.set(0);
      for (const [table, n] of Object.entries(r.outcome.ruleTotals)) metrics.iptablesRulesTotal.set({ ip_family: family, table }, n);
      const fields = {
        kind: r.outcome.kind,
        reason: r.reason,
        durationMs: Math.round(r.durationMs * 10) / 10,
        servicesChanged: r.servicesChanged,
        bytes: r.outcome.bytes,
        rules: r.outcome.ruleTotals,
        services: backend.serviceCount,
      };
      if (r.full) log.info(fields, 'full sync applied');
      else log.debug(fields, 'partial sync applied');
    },
    failed: (r) => {
      metrics.iptablesRestoreFailuresTotal.inc({ ip_family: family });
      if (!r.full) metrics.iptablesPartialRestoreFailuresTotal.inc({ ip_family: family });
      metrics.syncRetriesTotal.inc();
      log.error(
        {
          full: r.full,
          retryInMs: r.retryInMs,
          toolOutput: r.failure.stderr,
          offendingLines: r.failure.offendingLines,
        },
        // iptables-restore is atomic, so its rules stay as they were; ipvsadm -R is not, and the full sync
        // that follows reconciles whatever it left.
        `sync failed; a full sync follows: ${r.failure.message}`,
      );
    },
    noEndpoints: (service, change, total) => {
      metrics.servicesWithoutEndpoints.set(total);
      if (change === 'missing') {
        log.warn({ service }, 'service has a selector but no endpoints: connections to it are rejected (check the selector and pod readiness)');
      } else if (change === 'restored') {
        log.info({ service }, 'service has endpoints again');
      }
    },
    programmed: (_service, seconds) => metrics.networkProgrammingDuration.observe({ ip_family: family }, seconds),
    flushedFromOutside: () => log.warn('canary chain missing: rules were flushed from outside; running a full sync'),
    afterApply: async (changed) => {
      // Listing conntrack costs a table walk: only when a UDP Service changed (or went away); the reconciler
      // leaves TCP and SCTP alone, as upstream.
      let relevant = false;
      for (const key of changed) {
        const service = state.getService(key);
        const udp = service?.ports.some((p) => p.protocol === 'UDP') ?? false;
        if (udp || udpServices.has(key)) relevant = true;
        if (udp) udpServices.add(key);
        else udpServices.delete(key);
      }
      if (!relevant) return;
      try {
        const r = await conntrack.reconcile(state);
        metrics.conntrackReconcilerSyncDuration.observe({ ip_family: family }, r.durationMs / 1000);
        metrics.conntrackReconcilerDeletedEntriesTotal.inc({ ip_family: family }, r.deleted);
        if (r.deleted > 0) log.info({ deleted: r.deleted, flows: r.flows }, 'stale UDP conntrack entries deleted');
      } catch (e) {
        log.warn({ err: errorText(e) }, 'conntrack cleanup failed; it is retried after the next sync');
      }
    },
    internalError: (e) => log.error({ err: errorText(e) }, 'unexpected error in the sync loop; a full sync follows'),
  };

  let syncNo = 0;
  // A dry run prints each sync as `compile` does, headed by when it would have run.
  const printer = new PrintApplier(print, 'pipeable');
  const applier: Applier = flags.dryRun
    ? {
        apply: (steps) => {
          print(`# switchboard dry-run sync ${++syncNo} at ${new Date().toISOString()}\n`);
          return printer.apply(steps);
        },
      }
    : new KernelApplier();
  const loop = new SyncLoop(state, backend, hooks, {
    minSyncPeriodMs,
    syncPeriodMs,
    canaryPeriodMs: Math.min(syncPeriodMs, MAX_CANARY_PERIOD_MS),
    retry: { initialMs: 1000, maxMs: Math.max(1000, Math.min(syncPeriodMs, 30_000)) },
    applier,
    readKernel: !flags.dryRun,
  });

  let started = false;
  const source = new ClusterSource(client, state, config.nodeName, {
    changed: (kind) => loop.changed(kind),
    nodeChanged: (node) => {
      health.setNode(nodeLike(node));
      if (started) loop.nodeZoneChanged(node.zone);
      else state.setNodeZone(node.zone);
      if (node.deleting) log.warn({ node: config.nodeName }, 'node is being deleted: healthz reports 503');
    },
    rejected: (resource, key, errors) => log.warn({ resource, object: key, errors }, 'object rejected; its previous version (if any) stays programmed'),
    endpointsTriggered: (service, at) => loop.triggered(service, at),
    reflector: (e) => logReflector(log, metrics, e),
  });

  try {
    if (healthAddr) servers.push(await startHealthServer(healthAddr, health, metrics));
    if (metricsAddr) servers.push(await startMetricsServer(metricsAddr, metrics, { proxyMode: config.backend }));
  } catch (e) {
    await Promise.all(servers.map((s) => s.close()));
    throw new UsageError(`cannot listen: ${errorText(e)}`);
  }
  for (const s of servers) log.info({ address: `${s.address.host}:${s.address.port}` }, 'serving');

  let stopping: (() => void) | undefined;
  const stopped = new Promise<void>((resolve) => {
    stopping = resolve;
  });
  const onSignal = (signal: NodeJS.Signals): void => {
    log.info({ signal }, 'stopping; the rules stay in place');
    stopping?.();
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);

  source.start();
  const synced = await Promise.race([source.whenSynced().then(() => true), stopped.then(() => false)]);
  if (synced) {
    log.info({ services: state.serviceCount }, 'initial list complete');
    started = true;
    // As upstream's SyncLoop: the first sync is owed from now on, and health judges it.
    health.updated(family);
    health.queuedUpdate(family);
    loop.start();
    await stopped;
  }

  await source.stop();
  await loop.stop();
  await Promise.all(servers.map((s) => s.close()));
  process.off('SIGTERM', onSignal);
  process.off('SIGINT', onSignal);
  log.info('stopped');
  log.flush();
  return 0;
}

function nodeLike(node: NodeInfo): Parameters<ProxyHealth['setNode']>[0] {
  if (!node.exists) return null;
  return {
    metadata: { deletionTimestamp: node.deleting ? 'set' : undefined },
    spec: { taints: node.toBeDeleted ? [{ key: TO_BE_DELETED_TAINT }] : [] },
  };
}

function logReflector(log: Logger, metrics: ProxyMetrics, e: ReflectorEvent): void {
  const resource = e.resource;
  switch (e.kind) {
    case 'event':
      metrics.watchEventsTotal.inc({ resource, type: e.type });
      return;
    case 'listed':
      log.info({ resource, items: e.items, pages: e.pages, resourceVersion: e.resourceVersion }, 'listed');
      return;
    case 'watching':
      log.debug({ resource, resourceVersion: e.resourceVersion }, 'watching');
      return;
    case 'watch-ended':
      metrics.watchRestartsTotal.inc({ resource, reason: e.reason });
      if (e.reason === 'idle') log.warn({ resource }, 'watch silent for too long; reconnecting');
      else log.debug({ resource, reason: e.reason }, 'watch ended; resuming');
      return;
    case 'relist':
      metrics.watchRestartsTotal.inc({ resource, reason: 'expired' });
      log.info({ resource, reason: e.reason }, 'resource version expired; listing again');
      return;
    case 'retry':
      metrics.watchRestartsTotal.inc({ resource, reason: 'error' });
      log.warn({ resource, delayMs: e.delayMs, err: e.error }, 'API request failed; retrying');
      return;
  }
}

function durationFlag(flag: string, value: string, minMs: number): number {
  const ms = parseDuration(value);
  if (ms === undefined) throw new UsageError(`${flag}: "${value}" is not a duration (examples: 0, 500ms, 1s, 1m)`);
  if (ms < minMs) throw new UsageError(`${flag}: must be at least ${minMs} ms`);
  return ms;
}

function bindFlag(flag: string, value: string, defaultPort: number) {
  try {
    // Port 0 (any free port, logged at start) lets several agents share a network namespace in tests.
    return parseBindAddress(value, defaultPort, { allowEphemeralPort: true });
  } catch (e) {
    throw new UsageError(`${flag}: ${errorText(e)}`);
  }
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function kubeconfigOrUsage(flag: string | undefined): ReturnType<typeof loadKubeConfig> {
  try {
    return loadKubeConfig(flag);
  } catch (e) {
    if (e instanceof KubeconfigError) throw new UsageError(e.message);
    throw e;
  }
}
