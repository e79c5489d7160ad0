import { createBackends } from './backend-factory.js';
import { type ProxyConfig, nodeIPList } from './config.js';
import { UsageError } from './errors.js';
import { healthCheckAddresses } from './nodeport-addresses.js';
import { parseDuration } from '../duration.js';
import type { LogLevel } from '../log/levels.js';
import { createLogger } from '../log/logger.js';
import { conntrackLogs, errorText, reflectorLogs, syncLogs } from '../log/sync-logs.js';
import { ClusterState } from '../model/state.js';
import { ALL_FAMILIES, type IPFamily, mergeNodeIPs } from '../model/ip.js';
import { DEFAULT_HEALTHZ_PORT, DEFAULT_METRICS_PORT, parseBindAddress } from '../serve/bind-address.js';
import { ProxyHealth, healthHooks } from '../serve/health.js';
import { type RunningServer, startHealthServer, startMetricsServer } from '../serve/http.js';
import { ProxyMetrics } from '../serve/metrics.js';
import { ServiceHealthServer, listenFailureEvent } from '../serve/service-health.js';
import { serviceHealthHooks } from '../serve/service-health-feed.js';
import { conntrackMetrics, reflectorMetrics, syncMetrics } from '../serve/sync-metrics.js';
import { KubeApiClient } from '../sources/kube/api-client.js';
import { ClusterSource } from '../sources/kube/cluster-source.js';
import { EventRecorder, kubeProxyReporter } from '../sources/kube/event-recorder.js';
import { KubeconfigError, loadKubeConfig } from '../sources/kube/kubeconfig.js';
import { ConntrackReconciler } from '../sync/conntrack.js';
import { type Applier, KernelApplier, PrintApplier } from '../sync/applier.js';
import { type SyncHooks, combineHooks } from '../sync/hooks.js';
import { SyncLoop } from '../sync/loop.js';

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
  // Both families, as kube-proxy's dual-stack MetaProxier, unless this node cannot program one.
  const { backends, iptablesMode, skipped } = await createBackends(config, ALL_FAMILIES, { dryRun: flags.dryRun });
  if (iptablesMode !== undefined) log.info({ mode: iptablesMode.mode, reason: iptablesMode.reason }, 'iptables mode chosen');
  for (const { family, why } of skipped) log.warn({ family, reason: why }, `${family} is not programmed on this node: running single-stack`);
  if (backends.length === 0) throw new UsageError(`no IP family can be programmed on this node: ${skipped.map((s) => `${s.family}: ${s.why}`).join('; ')}`);
  const families = backends.map((b) => b.family);
  log.info({ families }, 'IP families programmed');

  const metrics = new ProxyMetrics();
  const health = new ProxyHealth({ healthTimeoutMs: 2 * syncPeriodMs });
  const servers: RunningServer[] = [];
  // --node-ip is this node's IP for good; without it the Node object's addresses are, as they change.
  const givenIPs = nodeIPList(config);
  const state = new ClusterState(config.nodeName, undefined, givenIPs);
  const logConntrack = conntrackLogs(log);

  // Stale UDP flows are the kernel's: a dry run leaves them alone. One reconciler per family, as upstream.
  const conntrackCleanup = (family: IPFamily): Partial<SyncHooks> => {
    if (flags.dryRun) return {};
    const conntrack = new ConntrackReconciler(family);
    const countConntrack = conntrackMetrics(metrics, family);
    return {
      afterApply: async (changed) => {
        try {
          const r = await conntrack.afterApply(changed, state);
          if (r === undefined) return;
          countConntrack(r);
          logConntrack(r);
        } catch (e) {
          log.warn({ family, err: errorText(e) }, 'conntrack cleanup failed; it is retried after the next sync');
        }
      },
    };
  };
  // kube-proxy's per-service health checks, on the NodePort addresses (empty: every address).
  // kube-proxy's Events (a health-check port that cannot be opened). A dry run sends none: it changes nothing, in the cluster either.
  const events = flags.dryRun ? undefined : new EventRecorder(client, { ...kubeProxyReporter(), log });
  const serviceHealth = new ServiceHealthServer({
    addresses: healthCheckAddresses(config, families),
    proxyHealthy: () => health.isHealthy(),
    log,
    retryIntervalMs: 5_000,
    ...(events !== undefined ? { onListenError: (service: string, port: number, error: Error) => events.record(listenFailureEvent(config.nodeName, service, port, error)) } : {}),
  });
  // Where plans go: the kernel, or (a dry run) stdout, each sync headed by when it would have run (and, with
  // several families, which one: each family's output stays valid input for its tool).
  const dryRunApplier = (family: IPFamily | undefined): Applier => {
    let syncNo = 0;
    const printer = new PrintApplier(print, 'pipeable');
    return {
      apply: (steps) => {
        print(`# switchboard dry-run sync ${++syncNo}${family === undefined ? '' : ` (${family})`} at ${new Date().toISOString()}\n`);
        return printer.apply(steps);
      },
    };
  };
  // One health server for every family (one listener per port), fed after the primary family's syncs.
  const lanes = backends.map(({ family, backend }, i) => ({
    family,
    backend,
    ...(flags.dryRun && backends.length > 1 ? { applier: dryRunApplier(family) } : {}),
    hooks: combineHooks(
      healthHooks(health, family),
      i === 0 ? serviceHealthHooks(serviceHealth, state, families) : {},
      syncMetrics(metrics, backend.name, family),
      syncLogs(families.length > 1 ? log.child({ family }) : log, () => backend.serviceCount),
      conntrackCleanup(family),
    ),
  }));

  const applier: Applier = flags.dryRun ? dryRunApplier(undefined) : new KernelApplier();
  const loop = new SyncLoop(state, lanes, {
    minSyncPeriodMs,
    syncPeriodMs,
    canaryPeriodMs: Math.min(syncPeriodMs, MAX_CANARY_PERIOD_MS),
    retry: { initialMs: 1000, maxMs: Math.max(1000, Math.min(syncPeriodMs, 30_000)) },
    applier,
    readKernel: !flags.dryRun,
  });

  let started = false;
  const countWatch = reflectorMetrics(metrics);
  const logWatch = reflectorLogs(log);
  const source = new ClusterSource(client, state, config.nodeName, {
    changed: (kind) => loop.changed(kind),
    nodeChanged: (node) => {
      health.setNode(node.exists ? node : null);
      if (started) loop.nodeZoneChanged(node.zone);
      else state.setNodeZone(node.zone);
      // --node-ip wins for its family; the Node's addresses give the others.
      const ips = mergeNodeIPs(givenIPs, node.ips);
      if (ips.join(',') !== state.node.ips.join(',')) {
        if (started) loop.nodeIPsChanged(ips);
        else state.setNodeIPs(ips);
      }
      if (node.deleting) log.warn({ node: config.nodeName }, 'node is being deleted: healthz reports 503');
    },
    rejected: (resource, key, errors) => log.warn({ resource, object: key, errors }, 'object rejected; its previous version (if any) stays programmed'),
    endpointsTriggered: (service, at, family) => loop.triggered(service, at, family),
    reflector: (e) => {
      countWatch(e);
      logWatch(e);
    },
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
    for (const family of families) {
      health.updated(family);
      health.queuedUpdate(family);
    }
    loop.start();
    await stopped;
  }

  await source.stop();
  await loop.stop();
  await Promise.all(servers.map((s) => s.close()));
  await serviceHealth.close();
  events?.close();
  process.off('SIGTERM', onSignal);
  process.off('SIGINT', onSignal);
  log.info('stopped');
  log.flush();
  return 0;
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


function kubeconfigOrUsage(flag: string | undefined): ReturnType<typeof loadKubeConfig> {
  try {
    return loadKubeConfig(flag);
  } catch (e) {
    if (e instanceof KubeconfigError) throw new UsageError(e.message);
    throw e;
  }
}
