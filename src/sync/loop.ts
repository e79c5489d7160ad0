import type { ClusterState } from '../model/state.js';
import type { ServiceKey } from '../model/types.js';
import { Backoff } from '../backoff.js';
import { ToolError } from '../kernel/exec.js';
import type { IPFamily } from '../model/ip.js';
import type { ProxyBackend } from '../backends/backend.js';
import { type Applier, syncBackend } from './applier.js';
import { EndpointWatch } from './endpoint-watch.js';
import type { SyncHooks } from './hooks.js';

export interface SyncLoopOptions {
  /** Changes are coalesced: two syncs start at least this far apart (0: as soon as a change arrives). */
  readonly minSyncPeriodMs: number;
  /** A full sync at least this often, whatever happens. */
  readonly syncPeriodMs: number;
  /** How often the canary chains are checked for an outside flush. */
  readonly canaryPeriodMs: number;
  /** Backoff after a failed apply. */
  readonly retry: { readonly initialMs: number; readonly maxMs: number };
  /** Where plans go: the kernel, or the dry run's printer. */
  readonly applier: Applier;
  /** False for a dry run: backends never read the kernel and the canary is not checked. */
  readonly readKernel: boolean;
  readonly now?: () => number;
}

/**
 * One IP family's backend and the hooks that hear about its syncs (health, metrics and conntrack per family), as
 * kube-proxy's MetaProxier runs one proxier per family. Every sync syncs each lane; a lane that fails does not
 * hold the other back, and only it falls back to a full sync.
 */
export interface SyncLane {
  readonly family: IPFamily;
  readonly backend: ProxyBackend;
  readonly hooks: SyncHooks;
  /** Where this family's plans go, instead of the loop's applier (a dry run labels each family's output). */
  readonly applier?: Applier;
}

/** A lane's own sync state. */
class LaneState {
  needFull = true;
  fullReason = 'initial sync';
  readonly triggers = new Map<ServiceKey, number>();
  /** Services changed since the lane's last successful apply, for conntrack cleanup (survives failed syncs). */
  readonly unreconciled = new Set<ServiceKey>();
  /** The last no-local-endpoints count reported (undefined: none yet, so the first sync reports it). */
  lastNoLocal: { internal: number; external: number } | undefined;
  readonly endpoints: EndpointWatch;
  constructor(
    readonly lane: SyncLane,
    state: ClusterState,
  ) {
    this.endpoints = new EndpointWatch(state, lane.family);
  }

  requestFull(reason: string): void {
    if (!this.needFull) this.fullReason = reason;
    this.needFull = true;
  }
}

/**
 * The sync loop: coalesces changes, runs partial syncs through each family's backend, and falls back to a full
 * sync at start, after any failed apply, when the canary chains vanish and every sync period. A failed apply is
 * retried with backoff as a full sync, which reconciles whatever the failure left (one iptables-restore COMMIT
 * or nft transaction leaves the kernel as it was; IPVS's steps and a batched full sync may not).
 */
export class SyncLoop {
  private readonly now: () => number;
  private readonly lanes: readonly LaneState[];
  private lastStart = Number.NEGATIVE_INFINITY;
  private notBefore = 0;
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Number.POSITIVE_INFINITY;
  private periodicTimer: NodeJS.Timeout | undefined;
  private canaryTimer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private rerun = false;
  private started = false;
  private stopped = false;
  private readonly retryBackoff: Backoff;
  private syncs = 0;

  constructor(
    private readonly state: ClusterState,
    lanes: readonly SyncLane[],
    private readonly options: SyncLoopOptions,
  ) {
    if (lanes.length === 0) throw new Error('SyncLoop: no family to sync');
    this.now = options.now ?? Date.now;
    this.retryBackoff = new Backoff(options.retry.initialMs, options.retry.maxMs);
    this.lanes = lanes.map((lane) => new LaneState(lane, state));
  }

  /** Starts syncing: call once the sources have listed everything, so the first full sync is complete. */
  start(): void {
    if (this.started) return;
    this.started = true;
    this.schedule();
    this.armPeriodic();
    this.armCanary();
  }

  /** Waits for a sync in flight, then stops. The rules stay in the kernel. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    clearTimeout(this.periodicTimer);
    clearTimeout(this.canaryTimer);
    await this.running;
  }

  /** A Service or EndpointSlice changed in the state. */
  changed(kind: 'service' | 'endpoints'): void {
    for (const l of this.lanes) l.lane.hooks.queued(kind);
    this.schedule();
  }

  /** This node's zone changed: topology hints choose different endpoints for every Service. */
  nodeZoneChanged(zone: string | undefined): void {
    // Every Service is rendered again (the state marks them changed); a full sync writes the result.
    this.state.setNodeZone(zone);
    this.requestFull('node zone changed');
  }

  /** This node's IPs changed (the Node's addresses): load-balancer firewall rules may change. */
  nodeIPsChanged(ips: readonly string[]): void {
    this.state.setNodeIPs(ips);
    this.requestFull('node IPs changed');
  }

  requestFull(reason: string): void {
    for (const l of this.lanes) l.requestFull(reason);
    this.schedule();
  }

  /**
   * When the change behind a Service's new EndpointSlice happened (its last-change-trigger-time); `family` is the
   * slice's, whose lane reports it programmed (every lane's when not given).
   */
  triggered(service: ServiceKey, at: number, family?: IPFamily): void {
    for (const l of this.lanes) {
      if (family !== undefined && l.lane.family !== family) continue;
      const prev = l.triggers.get(service);
      if (prev === undefined || at < prev) l.triggers.set(service, at);
    }
  }

  get syncCount(): number {
    return this.syncs;
  }

  /** Resolves when no sync is running or queued (for tests and benchmarks). */
  async idle(): Promise<void> {
    while (this.running !== undefined || this.timer !== undefined) {
      await (this.running ?? new Promise((r) => setTimeout(r, 5)));
    }
  }

  private schedule(): void {
    if (!this.started || this.stopped) return;
    if (this.running !== undefined) {
      this.rerun = true;
      return;
    }
    const at = Math.max(this.lastStart + this.options.minSyncPeriodMs, this.notBefore, this.now());
    if (this.timer !== undefined && this.timerAt <= at) return;
    clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.timerAt = Number.POSITIVE_INFINITY;
      this.running = this.runSync().finally(() => {
        this.running = undefined;
        if (this.rerun) {
          this.rerun = false;
          this.schedule();
        }
      });
    }, at - this.now());
  }

  private armPeriodic(): void {
    clearTimeout(this.periodicTimer);
    if (this.stopped) return;
    this.periodicTimer = setTimeout(() => {
      this.requestFull('sync period');
      this.armPeriodic();
    }, this.options.syncPeriodMs);
  }

  private armCanary(): void {
    if (this.stopped || !this.options.readKernel) return;
    this.canaryTimer = setTimeout(() => {
      void this.checkCanary().finally(() => this.armCanary());
    }, this.options.canaryPeriodMs);
  }

  private async checkCanary(): Promise<void> {
    for (const l of this.lanes) {
      // Before the lane's first successful sync there is nothing to lose, and a full sync is queued anyway.
      if (l.needFull || this.stopped) continue;
      try {
        if (!(await l.lane.backend.canaryPresent())) {
          l.lane.hooks.flushedFromOutside();
          l.requestFull('canary chain missing: rules were flushed from outside');
          this.schedule();
        }
      } catch (e) {
        l.lane.hooks.internalError(e);
      }
    }
  }

  private async runSync(): Promise<void> {
    if (this.stopped) return;
    this.lastStart = this.now();
    const changed = this.state.takeChanges();
    let retryInMs: number | undefined;
    const backoff = (): number => (retryInMs ??= this.retryBackoff.next());
    let failed = false;
    for (const [i, l] of this.lanes.entries()) {
      if (!(await this.syncLane(l, i === 0, changed, backoff))) failed = true;
    }
    this.syncs++;
    if (failed) {
      this.notBefore = this.now() + backoff();
      this.rerun = true;
      return;
    }
    this.retryBackoff.reset();
    this.notBefore = 0;
  }

  /** One family's sync; false when it failed (the lane then needs a full sync). */
  private async syncLane(l: LaneState, primary: boolean, changed: ReadonlySet<ServiceKey>, backoff: () => number): Promise<boolean> {
    const { backend, hooks } = l.lane;
    const start = this.now();
    const full = l.needFull;
    const reason = full ? l.fullReason : 'changes';
    for (const key of changed) l.unreconciled.add(key);
    try {
      backend.update(this.state, changed);
      this.trackEndpoints(l, primary, changed);
      const outcome = await syncBackend(backend, full, { applier: l.lane.applier ?? this.options.applier, readKernel: this.options.readKernel });
      const end = this.now();
      if (full) {
        l.needFull = false;
        if (this.lanes.every((x) => !x.needFull)) this.armPeriodic();
      }
      hooks.synced({ outcome, full, reason, durationMs: end - start, servicesChanged: changed.size });
      // A full sync also programs whatever an earlier failed sync left pending.
      for (const key of full ? [...l.triggers.keys()] : changed) {
        const at = l.triggers.get(key);
        if (at === undefined) continue;
        l.triggers.delete(key);
        hooks.programmed(key, Math.max(0, end - at) / 1000);
      }
      if (l.unreconciled.size > 0) {
        const services = new Set(l.unreconciled);
        l.unreconciled.clear();
        await hooks.afterApply(services).catch((e: unknown) => hooks.internalError(e));
      }
      return true;
    } catch (e) {
      const failure = e instanceof ToolError ? e : undefined;
      if (failure === undefined) hooks.internalError(e);
      // The compiler kept the failed Services pending; a full sync also repairs whatever we misjudged.
      l.requestFull('previous sync failed');
      if (failure !== undefined) hooks.failed({ failure, full, durationMs: this.now() - start, retryInMs: backoff() });
      return false;
    }
  }

  /** Endpoint gaps per family; Services without any endpoint (of any family) are the primary lane's to report. */
  private trackEndpoints(l: LaneState, primary: boolean, changed: ReadonlySet<ServiceKey>): void {
    const { hooks } = l.lane;
    const before = l.lastNoLocal;
    const report = l.endpoints.observe(changed);
    if (primary) for (const { service, change } of report.noEndpoints) hooks.noEndpoints(service, change, report.withoutEndpoints);
    l.lastNoLocal = { internal: report.noLocalInternal, external: report.noLocalExternal };
    if (before?.internal !== report.noLocalInternal) hooks.noLocalEndpoints('internal', report.noLocalInternal);
    if (before?.external !== report.noLocalExternal) hooks.noLocalEndpoints('external', report.noLocalExternal);
  }
}
