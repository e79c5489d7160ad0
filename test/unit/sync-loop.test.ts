import { afterEach, describe, expect, it } from 'vitest';
import { normalizeEndpointSlice } from '../../src/model/endpoint-slice.js';
import { normalizeService } from '../../src/model/service.js';
import { ClusterState } from '../../src/model/state.js';
import type { ServiceKey } from '../../src/model/types.js';
import { ToolError } from '../../src/kernel/exec.js';
import { NO_STATS, type Plan, type ProxyBackend } from '../../src/backends/backend.js';
import { KernelApplier } from '../../src/sync/applier.js';
import type { SyncHooks } from '../../src/sync/hooks.js';
import { SyncLoop, type SyncLoopOptions } from '../../src/sync/loop.js';
import { endpointSlice, service } from '../support/objects.js';

/** A backend that records what the loop asks of it; `failNext` makes the next syncs throw an apply failure. */
class ScriptedBackend implements ProxyBackend {
  readonly name = 'iptables';
  readonly serviceCount = 0;
  readonly syncs: { full: boolean; services: string[] }[] = [];
  private pending = new Set<string>();
  failNext = 0;
  canary = true;

  update(_state: ClusterState, changed: Iterable<ServiceKey>): void {
    for (const k of changed) this.pending.add(k);
  }
  async plan(full: boolean): Promise<Plan> {
    await new Promise((r) => setTimeout(r, 2));
    if (this.failNext > 0) {
      this.failNext--;
      throw new ToolError({ code: 'TOOL_REFUSED', what: 'iptables-restore', reason: 'exit code 1', command: 'iptables-restore', stderr: 'line 3 failed', offendingLines: ['3: -A X'] });
    }
    const services = [...this.pending].sort();
    // A plan with no steps: the loop's applier runs nothing, and the commit records the sync.
    return {
      kind: full ? 'full' : 'partial',
      steps: [],
      stats: NO_STATS,
      commit: () => {
        this.syncs.push({ full, services });
        this.pending.clear();
      },
      abort: () => undefined,
    };
  }
  async canaryPresent(): Promise<boolean> {
    return this.canary;
  }
}

interface Recorded {
  queued: number;
  failed: { full: boolean; retryInMs: number }[];
  noEndpoints: [string, string, number][];
  programmed: [string, number][];
  flushed: number;
  reconciled: string[][];
  internal: unknown[];
}

function recordingHooks(): { hooks: SyncHooks; rec: Recorded } {
  const rec: Recorded = { queued: 0, failed: [], noEndpoints: [], programmed: [], flushed: 0, reconciled: [], internal: [] };
  const hooks: SyncHooks = {
    queued: () => void rec.queued++,
    synced: () => undefined,
    failed: (r) => void rec.failed.push({ full: r.full, retryInMs: r.retryInMs }),
    noEndpoints: (k, change, total) => void rec.noEndpoints.push([k, change, total]),
    noLocalEndpoints: () => undefined,
    programmed: (k, s) => void rec.programmed.push([k, s]),
    flushedFromOutside: () => void rec.flushed++,
    afterApply: async (changed) => void rec.reconciled.push([...changed].sort()),
    internalError: (e) => void rec.internal.push(e),
  };
  return { hooks, rec };
}

const OPTIONS: SyncLoopOptions = {
  minSyncPeriodMs: 0,
  syncPeriodMs: 60_000,
  canaryPeriodMs: 60_000,
  retry: { initialMs: 20, maxMs: 100 },
  applier: new KernelApplier(),
  readKernel: true,
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const serviceKeyOf = (name: string): ServiceKey => `default/${name}` as ServiceKey;

function addService(state: ClusterState, name: string, endpoints: string[]): void {
  const s = normalizeService(service({ name, clusterIP: `10.96.0.${name.length}`, ports: [{ port: 80 }] }));
  if (s.status !== 'ok') throw new Error('bad service');
  state.setService(s.value);
  setEndpoints(state, name, endpoints);
}

function setEndpoints(state: ClusterState, name: string, ips: string[]): void {
  const slice = normalizeEndpointSlice(endpointSlice({ name: `${name}-1`, service: name, ports: [{ port: 80 }], endpoints: ips.map((ip) => ({ ip })) }));
  if (slice.status !== 'ok') throw new Error('bad slice');
  state.setSlice(slice.value);
}

describe('sync loop', () => {
  const loops: SyncLoop[] = [];
  afterEach(async () => {
    await Promise.all(loops.splice(0).map((l) => l.stop()));
  });

  /** A loop over two families, each with its own scripted backend and recorded hooks. */
  function makeDual() {
    const state = new ClusterState();
    const v4 = { backend: new ScriptedBackend(), ...recordingHooks() };
    const v6 = { backend: new ScriptedBackend(), ...recordingHooks() };
    const loop = new SyncLoop(
      state,
      [
        { family: 'IPv4', backend: v4.backend, hooks: v4.hooks },
        { family: 'IPv6', backend: v6.backend, hooks: v6.hooks },
      ],
      OPTIONS,
    );
    loops.push(loop);
    return { state, v4, v6, loop };
  }

  function make(options: Partial<SyncLoopOptions> = {}) {
    const state = new ClusterState();
    const backend = new ScriptedBackend();
    const { hooks, rec } = recordingHooks();
    const loop = new SyncLoop(state, [{ family: 'IPv4', backend, hooks }], { ...OPTIONS, ...options });
    loops.push(loop);
    return { state, backend, rec, loop };
  }

  it('starts with one full sync of everything, then partial syncs of what changed', async () => {
    const { state, backend, loop } = make();
    addService(state, 'web', ['10.244.1.1']);
    addService(state, 'db', ['10.244.1.2']);
    loop.start();
    await loop.idle();
    expect(backend.syncs).toEqual([{ full: true, services: ['default/db', 'default/web'] }]);
    setEndpoints(state, 'web', ['10.244.1.1', '10.244.1.3']);
    loop.changed('endpoints');
    await loop.idle();
    expect(backend.syncs[1]).toEqual({ full: false, services: ['default/web'] });
  });

  it('coalesces a burst of changes into one sync, and keeps syncs min-sync-period apart', async () => {
    const { state, backend, loop } = make({ minSyncPeriodMs: 150 });
    addService(state, 'web', ['10.244.1.1']);
    loop.start();
    await loop.idle();
    const t0 = Date.now();
    for (let i = 2; i < 12; i++) {
      setEndpoints(state, 'web', [`10.244.1.${i}`]);
      loop.changed('endpoints');
    }
    await loop.idle();
    expect(backend.syncs).toHaveLength(2);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(100);
  });

  it('after a failed apply retries with backoff as a full sync, and reports the failure', async () => {
    const { state, backend, rec, loop } = make();
    addService(state, 'web', ['10.244.1.1']);
    loop.start();
    await loop.idle();
    backend.failNext = 2;
    setEndpoints(state, 'web', ['10.244.1.9']);
    loop.changed('endpoints');
    await sleep(150);
    await loop.idle();
    expect(rec.failed.map((f) => f.full)).toEqual([false, true]);
    expect(rec.failed[1]!.retryInMs).toBeGreaterThan(rec.failed[0]!.retryInMs);
    // The third attempt succeeds, and it is a full sync that still carries the changed Service.
    expect(backend.syncs.at(-1)).toEqual({ full: true, services: ['default/web'] });
    expect(rec.internal).toEqual([]);
  });

  it('syncs each family in every sync; a failing family falls back to full syncs without holding the other back', async () => {
    const { state, v4, v6, loop } = makeDual();
    addService(state, 'web', ['10.244.1.1']);
    loop.start();
    await loop.idle();
    expect([v4.backend.syncs, v6.backend.syncs]).toEqual([[{ full: true, services: ['default/web'] }], [{ full: true, services: ['default/web'] }]]);
    // IPv6 fails twice: IPv4's partial sync lands at once, IPv6 retries as full syncs.
    v6.backend.failNext = 2;
    setEndpoints(state, 'web', ['10.244.1.9']);
    loop.changed('endpoints');
    await sleep(200);
    await loop.idle();
    expect(v4.backend.syncs[1]).toEqual({ full: false, services: ['default/web'] });
    expect(v4.rec.failed).toEqual([]);
    expect(v6.rec.failed.map((f) => f.full)).toEqual([false, true]);
    expect(v6.backend.syncs.at(-1)).toEqual({ full: true, services: ['default/web'] });
    // Each family reconciles its own conntrack entries; only the primary reports Services without endpoints.
    expect(v4.rec.reconciled.flat()).toContain('default/web');
    expect(v6.rec.reconciled.flat()).toContain('default/web');
    setEndpoints(state, 'web', []);
    loop.changed('endpoints');
    await loop.idle();
    expect(v4.rec.noEndpoints).toEqual([['default/web', 'missing', 1]]);
    expect(v6.rec.noEndpoints).toEqual([]);
    // Both families hear of queued changes (per-family metrics).
    expect(v6.rec.queued).toBe(v4.rec.queued);
  });

  it('reports a slice\'s programming latency in its own family only', async () => {
    const { state, v4, v6, loop } = makeDual();
    addService(state, 'web', ['10.244.1.1']);
    loop.start();
    await loop.idle();
    setEndpoints(state, 'web', ['10.244.1.2']);
    loop.triggered(serviceKeyOf('web'), Date.now() - 50, 'IPv6');
    loop.changed('endpoints');
    await loop.idle();
    expect(v4.rec.programmed).toEqual([]);
    expect(v6.rec.programmed.map(([k]) => k)).toEqual(['default/web']);
  });

  it('runs a full sync when the canary chain disappears', async () => {
    const { state, backend, rec, loop } = make({ canaryPeriodMs: 30 });
    addService(state, 'web', ['10.244.1.1']);
    loop.start();
    await loop.idle();
    backend.canary = false;
    await sleep(80);
    backend.canary = true;
    await loop.idle();
    expect(rec.flushed).toBeGreaterThanOrEqual(1);
    expect(backend.syncs.filter((s) => s.full).length).toBeGreaterThanOrEqual(2);
  });

  it('runs a full sync every sync period even without changes', async () => {
    const { state, backend, loop } = make({ syncPeriodMs: 40 });
    addService(state, 'web', ['10.244.1.1']);
    loop.start();
    await sleep(150);
    await loop.idle();
    expect(backend.syncs.filter((s) => s.full).length).toBeGreaterThanOrEqual(3);
  });

  it('warns about a Service with a selector and no endpoints, and says when it has some again', async () => {
    const { state, rec, loop } = make();
    addService(state, 'web', []);
    loop.start();
    await loop.idle();
    expect(rec.noEndpoints).toEqual([['default/web', 'missing', 1]]);
    setEndpoints(state, 'web', ['10.244.1.1']);
    loop.changed('endpoints');
    await loop.idle();
    expect(rec.noEndpoints[1]).toEqual(['default/web', 'restored', 0]);
  });

  it('reports programming latency from the trigger time and hands changed Services to conntrack cleanup', async () => {
    const { state, rec, loop } = make();
    addService(state, 'web', ['10.244.1.1']);
    loop.start();
    await loop.idle();
    setEndpoints(state, 'web', ['10.244.1.2']);
    loop.triggered('default/web' as ServiceKey, Date.now() - 500);
    loop.changed('endpoints');
    await loop.idle();
    expect(rec.programmed).toHaveLength(1);
    expect(rec.programmed[0]![1]).toBeGreaterThanOrEqual(0.5);
    expect(rec.reconciled.at(-1)).toEqual(['default/web']);
  });

  it('a node zone change re-renders everything with a full sync', async () => {
    const { state, backend, loop } = make();
    addService(state, 'web', ['10.244.1.1']);
    loop.start();
    await loop.idle();
    loop.nodeZoneChanged('zone-b');
    await loop.idle();
    expect(state.node.zone).toBe('zone-b');
    // Every Service is rendered again, in a full sync.
    expect(backend.syncs.at(-1)).toEqual({ full: true, services: ['default/web'] });
  });
});
