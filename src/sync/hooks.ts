// What the sync loop reports, and a way to compose the parts that listen (metrics, logs, health, conntrack),
// each of which lives with what it feeds (serve/sync-metrics.ts, log/sync-logs.ts, serve/health.ts).
import type { ToolError } from '../kernel/exec.js';
import type { ServiceKey } from '../model/types.js';
import type { SyncOutcome } from './applier.js';
import type { EndpointsChange } from './endpoint-watch.js';

export interface SyncReport {
  readonly outcome: SyncOutcome;
  readonly full: boolean;
  readonly reason: string;
  readonly durationMs: number;
  readonly servicesChanged: number;
}

export interface SyncFailureReport {
  readonly failure: ToolError;
  readonly full: boolean;
  readonly durationMs: number;
  readonly retryInMs: number;
}

/** Everything the loop tells the outside world: health, metrics, logs and conntrack cleanup hang off these. */
export interface SyncHooks {
  /** A change is waiting for a sync (kube-proxy's QueuedUpdate). */
  queued(kind: 'service' | 'endpoints'): void;
  synced(report: SyncReport): void;
  failed(report: SyncFailureReport): void;
  /**
   * A Service with a selector has no endpoints at all ('missing'), has some again ('restored'), or was deleted
   * while it had none ('deleted'); `total` is how many such Services there are now.
   */
  noEndpoints(service: ServiceKey, change: EndpointsChange, total: number): void;
  /** Service ports with a Local traffic policy (internal, or external for reachable ports) whose endpoints are all on other nodes, now. */
  noLocalEndpoints(policy: 'internal' | 'external', total: number): void;
  /** Seconds from an EndpointSlice change's trigger time to its rules being applied. */
  programmed(service: ServiceKey, seconds: number): void;
  /** The canary chains were gone; a full sync follows. */
  flushedFromOutside(): void;
  /**
   * Runs after a successful apply with the Services it changed (deleted ones included), for stale UDP
   * conntrack cleanup. Errors are the hook's to report; they never fail the sync.
   */
  afterApply(changed: ReadonlySet<ServiceKey>): Promise<void>;
  /** An unexpected error in the loop itself (a bug): logged, and the loop carries on with a full sync. */
  internalError(e: unknown): void;
}

/** One SyncHooks from several partial ones: each hook calls every part that has it, in order. */
export function combineHooks(...parts: readonly Partial<SyncHooks>[]): SyncHooks {
  const each = <K extends keyof SyncHooks>(name: K) => parts.flatMap((p) => (p[name] === undefined ? [] : [p[name]])) as SyncHooks[K][];
  const queued = each('queued');
  const synced = each('synced');
  const failed = each('failed');
  const noEndpoints = each('noEndpoints');
  const noLocalEndpoints = each('noLocalEndpoints');
  const programmed = each('programmed');
  const flushedFromOutside = each('flushedFromOutside');
  const afterApply = each('afterApply');
  const internalError = each('internalError');
  return {
    queued: (kind) => queued.forEach((h) => h(kind)),
    synced: (report) => synced.forEach((h) => h(report)),
    failed: (report) => failed.forEach((h) => h(report)),
    noEndpoints: (service, change, total) => noEndpoints.forEach((h) => h(service, change, total)),
    noLocalEndpoints: (policy, total) => noLocalEndpoints.forEach((h) => h(policy, total)),
    programmed: (service, seconds) => programmed.forEach((h) => h(service, seconds)),
    flushedFromOutside: () => flushedFromOutside.forEach((h) => h()),
    afterApply: async (changed) => {
      for (const h of afterApply) await h(changed);
    },
    internalError: (e) => internalError.forEach((h) => h(e)),
  };
}
