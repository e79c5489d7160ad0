// Stale UDP conntrack cleanup, after upstream's conntrack reconciler (pkg/proxy/conntrack/cleanup.go,
// CleanStaleEntries, with the later fixes for services with no endpoints and deleted services).
//
// UDP has no connection teardown: a client that keeps sending from one socket refreshes its conntrack entry
// forever, so its datagrams stay DNAT'ed to whatever backend the first packet picked, even after that
// backend left the Service or the Service is gone. TCP is never touched (it has its own teardown, and cutting
// flows would break graceful termination); SCTP is left alone as upstream leaves it.
import { type ConntrackRunner, type RunResult, runConntrack } from '../kernel/conntrack.js';
import { endpointsForPort } from '../model/endpoints.js';
import { type IPFamily, joinHostPort } from '../model/ip.js';
import type { ClusterState } from '../model/state.js';
import { type ConntrackFlow, parseConntrackList, parseDeletedCount } from './conntrack-parse.js';

export { type ConntrackFlow, parseConntrackList } from './conntrack-parse.js';

/**
 * For every UDP service frontend, the endpoints (`ip:port`) a flow to it may legitimately be DNAT'ed to.
 * An empty set means "no flow to this frontend is legitimate" (no serving endpoint, or a deleted Service).
 */
export interface ServiceBackends {
  /** `serviceIP:port`: ClusterIPs today; external and load-balancer IPs join here when they are programmed. */
  readonly byServiceIP: ReadonlyMap<string, ReadonlySet<string>>;
  /** NodePort → serving endpoints, matched on any destination IP. Empty until NodePorts are programmed. */
  readonly byNodePort: ReadonlyMap<number, ReadonlySet<string>>;
}

/**
 * The serving endpoints of every UDP service port of `family`. Like upstream, this is every *serving*
 * endpoint (ready or serving-terminating), not the ones endpoint selection chose: traffic policy, topology
 * and termination must not cut flows that are still valid, so UDP keeps behaving like TCP for existing flows.
 */
export function servingUdpBackends(state: ClusterState, family: IPFamily): ServiceBackends {
  const byServiceIP = new Map<string, ReadonlySet<string>>();
  const byNodePort = new Map<number, ReadonlySet<string>>();
  for (const svc of state.allServices()) {
    const clusterIP = svc.clusterIPs[family];
    if (clusterIP === undefined) continue;
    const udpPorts = svc.ports.filter((p) => p.protocol === 'UDP');
    if (udpPorts.length === 0) continue;
    const slices = state.slicesOf(svc.key);
    for (const port of udpPorts) {
      // The node name only sets isLocal, which does not matter here.
      const serving = new Set<string>();
      for (const ep of endpointsForPort(slices, port, family, '')) if (ep.serving) serving.add(ep.hostPort);
      byServiceIP.set(joinHostPort(clusterIP, port.port), serving);
    }
  }
  return { byServiceIP, byNodePort };
}

/**
 * `current` plus every frontend of `previous` that is gone, with no legitimate backend: flows to a deleted
 * Service (or a removed port) are all stale (upstream's DeletedServices handling).
 */
export function withDeletedFrontends(current: ServiceBackends, previous: ServiceBackends): ServiceBackends {
  const none: ReadonlySet<string> = new Set();
  const byServiceIP = new Map(current.byServiceIP);
  for (const key of previous.byServiceIP.keys()) if (!byServiceIP.has(key)) byServiceIP.set(key, none);
  const byNodePort = new Map(current.byNodePort);
  for (const key of previous.byNodePort.keys()) if (!byNodePort.has(key)) byNodePort.set(key, none);
  return { byServiceIP, byNodePort };
}

/**
 * UDP flows whose original destination is a service frontend and whose reply source (the backend the flow
 * was DNAT'ed to) is not a serving endpoint of it. This includes flows that were never DNAT'ed (reply
 * source = the service IP itself, from before the rules existed): upstream deletes those too, since they
 * keep the client's datagrams away from the rules.
 */
export function staleFlows(flows: readonly ConntrackFlow[], backends: ServiceBackends): ConntrackFlow[] {
  const out: ConntrackFlow[] = [];
  for (const flow of flows) {
    if (flow.protocol !== 'udp') continue;
    const backend = joinHostPort(flow.replySrc, flow.replySport);
    const viaIP = backends.byServiceIP.get(joinHostPort(flow.origDst, flow.origDport));
    if (viaIP !== undefined) {
      if (!viaIP.has(backend)) out.push(flow);
      continue;
    }
    const viaNodePort = backends.byNodePort.get(flow.origDport);
    if (viaNodePort !== undefined && !viaNodePort.has(backend)) out.push(flow);
  }
  return out;
}

/** One `conntrack -D` filter: every UDP flow from a frontend to one stale backend. */
export interface DeleteFilter {
  readonly origDst: string;
  readonly origDport: number;
  readonly replySrc: string;
  readonly replySport: number;
  /** How many listed flows it covers. */
  readonly flows: number;
}

/**
 * Groups stale flows by (orig dst, orig dport, reply src, reply sport). Staleness depends on exactly
 * these four fields, so every flow such a filter can match (including one created after the listing) is
 * stale too. One process per group instead of per flow matters: conntrack 1.4.7 walks the whole table
 * for every `-D`, about 70 ms at 20,000 flows, while one filtered `-D` removed 1,700 flows in 73 ms.
 */
export function deleteFilters(stale: readonly ConntrackFlow[]): DeleteFilter[] {
  const groups = new Map<string, { origDst: string; origDport: number; replySrc: string; replySport: number; flows: number }>();
  for (const f of stale) {
    const key = `${f.origDst} ${f.origDport} ${f.replySrc} ${f.replySport}`;
    const g = groups.get(key);
    if (g === undefined) {
      groups.set(key, { origDst: f.origDst, origDport: f.origDport, replySrc: f.replySrc, replySport: f.replySport, flows: 1 });
    } else g.flows++;
  }
  return [...groups.values()];
}

export function deleteArgs(family: IPFamily, f: DeleteFilter): string[] {
  return [
    '-D',
    '-f',
    familyArg(family),
    '-p',
    'udp',
    '--orig-dst',
    f.origDst,
    '--orig-port-dst',
    String(f.origDport),
    '--reply-src',
    f.replySrc,
    '--reply-port-src',
    String(f.replySport),
  ];
}

export function listArgs(family: IPFamily): string[] {
  return ['-L', '-f', familyArg(family), '-p', 'udp'];
}

const familyArg = (family: IPFamily): string => (family === 'IPv4' ? 'ipv4' : 'ipv6');

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

  constructor(
    readonly family: IPFamily,
    private readonly opts: Omit<ReconcileOptions, 'previous'> = {},
  ) {}

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
