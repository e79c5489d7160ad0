// Stale UDP conntrack cleanup, after upstream's conntrack reconciler (pkg/proxy/conntrack/cleanup.go,
// CleanStaleEntries, with the later fixes for services with no endpoints and deleted services).
//
// UDP has no connection teardown: a client that keeps sending from one socket refreshes its conntrack entry
// forever, so its datagrams stay DNAT'ed to whatever backend the first packet picked, even after that
// backend left the Service or the Service is gone. TCP is never touched (it has its own teardown, and cutting
// flows would break graceful termination); SCTP is left alone as upstream leaves it.
import { type ConntrackRunner, type RunResult, runConntrack } from '../kernel/conntrack.js';
import type { IPFamily } from '../model/ip.js';
import type { ClusterState } from '../model/state.js';
import type { ServiceKey } from '../model/types.js';
import { type ConntrackFlow, parseConntrackList, parseDeletedCount } from './conntrack-parse.js';
import { type ServiceBackends, deleteArgs, deleteFilters, listArgs, servingUdpBackends, staleFlows, withDeletedFrontends } from './conntrack-plan.js';

/** A reconcile that could not list or delete everything it should. */
export class ConntrackError extends Error {
  constructor(
    message: string,
    /** Flows deleted before the failure. */
    readonly deleted = 0,
  ) {
    super(message);
    this.name = 'ConntrackError';
  }
}

export interface ReconcileOptions {
  run?: ConntrackRunner;
  /**
   * The frontends of the previous successful reconcile: those missing from `state` now belong to deleted
   * Services, and all their flows go. ConntrackReconciler keeps this for you.
   */
  previous?: ServiceBackends;
  /** Concurrent `conntrack -D` processes (default 4). */
  concurrency?: number;
}

export interface ReconcileResult {
  /** Flows conntrack reported deleted. */
  readonly deleted: number;
  /** UDP flows listed. */
  readonly flows: number;
  /** Of those, flows found stale. */
  readonly stale: number;
  readonly durationMs: number;
}

/**
 * Lists the UDP conntrack table of `family` in the current network namespace, and deletes the flows that
 * `state` makes stale. Call it after the rules for `state` were applied successfully: deleting earlier
 * lets the next datagram be DNAT'ed by the old rules again.
 *
 * Throws ConntrackError if `conntrack` is missing, the listing fails, or any delete fails (after trying
 * all of them; `deleted` says how many went). A delete that finds nothing (the flow expired meanwhile:
 * exit 1, "0 flow entries have been deleted") is not an error.
 */
export async function reconcileConntrack(
  state: ClusterState,
  family: IPFamily,
  opts: ReconcileOptions = {},
): Promise<ReconcileResult> {
  const current = servingUdpBackends(state, family);
  const backends = opts.previous === undefined ? current : withDeletedFrontends(current, opts.previous);
  return reconcileBackends(backends, family, opts);
}

/** reconcileConntrack for frontends computed already (servingUdpBackends, withDeletedFrontends). */
export async function reconcileBackends(
  backends: ServiceBackends,
  family: IPFamily,
  opts: Omit<ReconcileOptions, 'previous'> = {},
): Promise<ReconcileResult> {
  const start = performance.now();
  const run = opts.run ?? runConntrack;
  // Nothing can be stale: spare the table walk.
  if (backends.byServiceIP.size === 0 && backends.byNodePort.size === 0) {
    return { deleted: 0, flows: 0, stale: 0, durationMs: performance.now() - start };
  }

  const list = await run(listArgs(family), { captureStdout: true });
  if (list.exitCode !== 0) {
    throw new ConntrackError(`conntrack ${listArgs(family).join(' ')} exited ${list.exitCode}: ${list.stderr.trim()}`);
  }
  let flows: ConntrackFlow[];
  try {
    flows = parseConntrackList(list.stdout);
  } catch (e) {
    throw new ConntrackError(e instanceof Error ? e.message : String(e));
  }
  const stale = staleFlows(flows, backends);
  const filters = deleteFilters(stale);

  let deleted = 0;
  const failures: string[] = [];
  await forEachLimited(filters, opts.concurrency ?? 4, async (filter) => {
    const args = deleteArgs(family, filter);
    let r: RunResult;
    try {
      r = await run(args, { captureStdout: false });
    } catch (e) {
      failures.push(e instanceof Error ? e.message : String(e));
      return;
    }
    const count = parseDeletedCount(r.stderr);
    if (r.exitCode === 0) deleted += count ?? filter.flows;
    else if (r.exitCode === 1 && count === 0) return; // expired between listing and deleting
    else failures.push(`conntrack ${args.join(' ')} exited ${r.exitCode}: ${r.stderr.trim()}`);
  });
  if (failures.length > 0) {
    const shown = failures.slice(0, 3).join('; ');
    const more = failures.length > 3 ? ` (and ${failures.length - 3} more)` : '';
    throw new ConntrackError(`${failures.length} of ${filters.length} conntrack deletes failed: ${shown}${more}`, deleted);
  }
  return { deleted, flows: flows.length, stale: stale.length, durationMs: performance.now() - start };
}

/**
 * The agent's handle: reconcileConntrack plus memory of the last successful reconcile's frontends, so
 * flows to Services deleted since then are removed too. If a reconcile fails the memory is kept, and the
 * next one still sees the deletions. A restarted agent forgets them, as upstream does.
 */
export class ConntrackReconciler {
  private previous: ServiceBackends | undefined;
  /** Services with a UDP port as of the last apply, so one that loses its UDP ports (or goes) still counts. */
  private readonly udpServices = new Set<ServiceKey>();

  constructor(
    readonly family: IPFamily,
    private readonly opts: Omit<ReconcileOptions, 'previous'> = {},
  ) {}

  /**
   * After a successful apply that changed these Services: reconcile when one of them has (or had) a UDP port,
   * else nothing (listing conntrack costs a table walk; TCP and SCTP are left alone, as upstream). Undefined when
   * nothing was done.
   */
  async afterApply(changed: Iterable<ServiceKey>, state: ClusterState): Promise<ReconcileResult | undefined> {
    let relevant = false;
    for (const key of changed) {
      const udp = state.getService(key)?.ports.some((p) => p.protocol === 'UDP') ?? false;
      if (udp || this.udpServices.has(key)) relevant = true;
      if (udp) this.udpServices.add(key);
      else this.udpServices.delete(key);
    }
    return relevant ? this.reconcile(state) : undefined;
  }

  async reconcile(state: ClusterState): Promise<ReconcileResult> {
    const current = servingUdpBackends(state, this.family);
    const backends = this.previous === undefined ? current : withDeletedFrontends(current, this.previous);
    const result = await reconcileBackends(backends, this.family, this.opts);
    this.previous = current;
    return result;
  }
}

async function forEachLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++] as T;
      await fn(item);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
}
