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
  /** The family the backend programs (endpoint gaps are counted in it). */
  readonly family: IPFamily;
  readonly now?: () => number;
}

/**
 * The sync loop: coalesces changes, runs partial syncs through the backend, and falls back to a full sync
 * at start, after any failed apply, when the canary chains vanish and every sync period. A failed apply is
 * retried with backoff as a full sync, which reconciles whatever the failure left (one iptables-restore COMMIT
 * or nft transaction leaves the kernel as it was; IPVS's steps and a batched full sync may not).
 */
export class SyncLoop {
  private readonly now: () => number;
  private needFull = true;
  private fullReason = 'initial sync';
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
  private readonly triggers = new Map<ServiceKey, number>();
  private readonly endpoints: EndpointWatch;
  /** Services changed since the last successful apply, for conntrack cleanup (survives failed syncs). */
  private readonly unreconciled = new Set<ServiceKey>();
  private syncs = 0;
  /** The last no-local-endpoints count reported (undefined: none yet, so the first sync reports it). */
  private lastNoLocal: { internal: number; external: number } | undefined;

  constructor(
    private readonly state: ClusterState,
    private readonly backend: ProxyBackend,
    private readonly hooks: SyncHooks,
    private readonly options: SyncLoopOptions,
  ) {
    this.now = options.now ?? Date.now;
    this.retryBackoff = new Backoff(options.retry.initialMs, options.retry.maxMs);
    this.endpoints = new EndpointWatch(state, options.family);
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
    this.hooks.queued(kind);
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
    if (!this.needFull) this.fullReason = reason;
    this.needFull = true;
    this.schedule();
  }

  /** When the change behind a Service's new EndpointSlice happened (its last-change-trigger-time). */
  triggered(service: ServiceKey, at: number): void {
    const prev = this.triggers.get(service);
    if (prev === undefined || at < prev) this.triggers.set(service, at);
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
    // Before the first successful sync there is nothing to lose, and a full sync is queued anyway.
    if (this.needFull || this.stopped) return;
    try {
      if (!(await this.backend.canaryPresent())) {
        this.hooks.flushedFromOutside();
        this.requestFull('canary chain missing: rules were flushed from outside');
      }
    } catch (e) {
      this.hooks.internalError(e);
    }
  }

  private async runSync(): Promise<void> {
    if (this.stopped) return;
    const start = this.now();
    this.lastStart = start;
    const full = this.needFull;
    const reason = full ? this.fullReason : 'changes';
    const changed = this.state.takeChanges();
    for (const key of changed) this.unreconciled.add(key);
    try {
      this.backend.update(this.state, changed);
      this.trackEndpoints(changed);
      const outcome = await syncBackend(this.backend, full, this.options);
      const end = this.now();
      this.syncs++;
      if (full) {
        this.needFull = false;
        this.armPeriodic();
      }
      this.retryBackoff.reset();
      this.notBefore = 0;
      this.hooks.synced({ outcome, full, reason, durationMs: end - start, servicesChanged: changed.size });
      // A full sync also programs whatever an earlier failed sync left pending.
      for (const key of full ? [...this.triggers.keys()] : changed) {
        const at = this.triggers.get(key);
        if (at === undefined) continue;
        this.triggers.delete(key);
        this.hooks.programmed(key, Math.max(0, end - at) / 1000);
      }
      if (this.unreconciled.size > 0) {
        const services = new Set(this.unreconciled);
        this.unreconciled.clear();
        await this.hooks.afterApply(services).catch((e: unknown) => this.hooks.internalError(e));
      }
    } catch (e) {
      const failure = e instanceof ToolError ? e : undefined;
      if (failure === undefined) this.hooks.internalError(e);
      // The compiler kept the failed Services pending; a full sync also repairs whatever we misjudged.
      if (!this.needFull) this.fullReason = 'previous sync failed';
      this.needFull = true;
      const retryInMs = this.retryBackoff.next();
      this.notBefore = this.now() + retryInMs;
      if (failure !== undefined) this.hooks.failed({ failure, full, durationMs: this.now() - start, retryInMs });
      this.rerun = true;
    }
  }

  private trackEndpoints(changed: ReadonlySet<ServiceKey>): void {
    const before = this.lastNoLocal;
    const report = this.endpoints.observe(changed);
    for (const { service, change } of report.noEndpoints) this.hooks.noEndpoints(service, change, report.withoutEndpoints);
    this.lastNoLocal = { internal: report.noLocalInternal, external: report.noLocalExternal };
    if (before?.internal !== report.noLocalInternal) this.hooks.noLocalEndpoints('internal', report.noLocalInternal);
    if (before?.external !== report.noLocalExternal) this.hooks.noLocalEndpoints('external', report.noLocalExternal);
  }
}
