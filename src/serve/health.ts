// Proxy health as kube-proxy's ProxyHealthServer (pkg/proxy/healthcheck/proxy_health.go) defines it:
// a proxier is unhealthy once an update it was told about (queuedUpdate) has waited healthTimeout
// without a successful sync (updated). /healthz additionally requires the Node to be eligible
// (not being deleted, not tainted ToBeDeletedByClusterAutoscaler); /livez ignores the Node.
// Pure: no I/O, the clock is injected. Counting requests is the HTTP layer's job.

import type { IPFamily } from '../model/ip.js';
import type { SyncHooks } from '../sync/hooks.js';

export interface HealthResponse {
  status: 200 | 503;
  body: string;
  headers: Record<string, string>;
}

/** The facts of this node's Node object that decide eligibility (the source reads them off the object). */
export interface NodeEligibility {
  /** metadata.deletionTimestamp is set. */
  readonly deleting: boolean;
  /** Tainted ToBeDeletedByClusterAutoscaler. */
  readonly toBeDeleted: boolean;
}

export interface ProxierHealth {
  /** ms since the epoch of the family's last successful sync. */
  lastUpdatedMs: number;
  healthy: boolean;
}

export interface ProxyHealthSnapshot {
  healthy: boolean;
  /** Newest lastUpdated over all families; undefined before the first updated(). */
  lastUpdatedMs: number | undefined;
  currentTimeMs: number;
  status: Partial<Record<IPFamily, ProxierHealth>>;
}

/** Upstream NodeEligible: false for a missing Node, one being deleted, or one the autoscaler is draining. */
export function isNodeEligible(node: NodeEligibility | null): boolean {
  return node !== null && !node.deleting && !node.toBeDeleted;
}

const FAMILIES: readonly IPFamily[] = ['IPv4', 'IPv6'];
// Go's zero time.Time, which upstream prints for "never updated".
const GO_ZERO_TIME = '0001-01-01T00:00:00Z';

/** Go's time.Time JSON form (RFC 3339 with trailing fractional zeros trimmed), in UTC. */
export function goTimeJSON(ms: number | undefined): string {
  if (ms === undefined) return GO_ZERO_TIME;
  const iso = new Date(ms).toISOString(); // 2006-01-02T15:04:05.000Z
  return iso.replace(/\.(\d*?)0*Z$/, (_m, frac: string) => (frac === '' ? 'Z' : `.${frac}Z`));
}

const JSON_HEADERS: Readonly<Record<string, string>> = {
  'Content-Type': 'application/json',
  'X-Content-Type-Options': 'nosniff',
};

export class ProxyHealth {
  private readonly healthTimeoutMs: number;
  private readonly now: () => number;
  private readonly lastUpdated = new Map<IPFamily, number>();
  private readonly oldestPendingQueued = new Map<IPFamily, number>();
  // undefined = not told yet. Upstream only serves once its NodeManager holds the Node, so the
  // agent should call setNode before serving; until then the node counts as eligible.
  private node: NodeEligibility | null | undefined;

  constructor(opts: { healthTimeoutMs: number; now?: () => number }) {
    if (!Number.isFinite(opts.healthTimeoutMs) || opts.healthTimeoutMs <= 0) {
      throw new Error(`health timeout must be a positive number of milliseconds, got ${opts.healthTimeoutMs}`);
    }
    this.healthTimeoutMs = opts.healthTimeoutMs;
    this.now = opts.now ?? Date.now;
  }

  /** A change needs syncing. Only the oldest pending one counts, as upstream. */
  queuedUpdate(family: IPFamily = 'IPv4'): void {
    if (!this.oldestPendingQueued.has(family)) this.oldestPendingQueued.set(family, this.now());
  }

  /**
   * Rules reflect the current state. Also call once when the sync loop starts (upstream SyncLoop
   * does): a family that never called updated() is not judged at all, so a first sync that never
   * succeeds would otherwise look healthy forever.
   */
  updated(family: IPFamily = 'IPv4'): void {
    this.oldestPendingQueued.delete(family);
    this.lastUpdated.set(family, this.now());
  }

  /** The latest Node object for this node, or null once it is gone. */
  setNode(node: NodeEligibility | null): void {
    this.node = node;
  }

  nodeEligible(): boolean {
    return this.node === undefined ? true : isNodeEligible(this.node);
  }

  snapshot(): ProxyHealthSnapshot {
    const currentTimeMs = this.now();
    const status: Partial<Record<IPFamily, ProxierHealth>> = {};
    let lastUpdatedMs: number | undefined;
    let healthy = true;
    for (const family of FAMILIES) {
      const last = this.lastUpdated.get(family);
      if (last === undefined) continue;
      if (lastUpdatedMs === undefined || last > lastUpdatedMs) lastUpdatedMs = last;
      const queued = this.oldestPendingQueued.get(family);
      const late = queued !== undefined && currentTimeMs - queued >= this.healthTimeoutMs;
      if (late) healthy = false;
      status[family] = { lastUpdatedMs: last, healthy: !late };
    }
    return { healthy, lastUpdatedMs, currentTimeMs, status };
  }

  /** Proxier health only, ignoring the Node (upstream IsHealthy). */
  isHealthy(): boolean {
    return this.snapshot().healthy;
  }

  healthz(): HealthResponse {
    const snap = this.snapshot();
    const eligible = this.nodeEligible();
    return respond(snap, snap.healthy && eligible, eligible);
  }

  livez(): HealthResponse {
    const snap = this.snapshot();
    return respond(snap, snap.healthy, undefined);
  }
}

function respond(snap: ProxyHealthSnapshot, ok: boolean, nodeEligible: boolean | undefined): HealthResponse {
  // When healthy, upstream reports lastUpdated as "now" for compatibility with releases in which
  // it was the time of the last sync loop run; the per-family entries keep the real times.
  const lastUpdated = ok ? snap.currentTimeMs : snap.lastUpdatedMs;
  const status: Record<string, { lastUpdated: string; healthy: boolean }> = {};
  for (const family of FAMILIES) {
    const s = snap.status[family];
    if (s !== undefined) status[family] = { lastUpdated: goTimeJSON(s.lastUpdatedMs), healthy: s.healthy };
  }
  // Field order and omissions follow upstream's ProxyHealth JSON: nodeEligible only on /healthz,
  // status omitted while empty.
  const body = {
    lastUpdated: goTimeJSON(lastUpdated),
    currentTime: goTimeJSON(snap.currentTimeMs),
    ...(nodeEligible !== undefined ? { nodeEligible } : {}),
    healthy: snap.healthy,
    ...(Object.keys(status).length > 0 ? { status } : {}),
  };
  return { status: ok ? 200 : 503, body: JSON.stringify(body), headers: { ...JSON_HEADERS } };
}

/** The sync loop's reports as health: a queued change starts the clock, a sync stops it. */
export function healthHooks(health: ProxyHealth, family: IPFamily): Partial<SyncHooks> {
  return {
    queued: () => health.queuedUpdate(family),
    synced: () => health.updated(family),
  };
}
