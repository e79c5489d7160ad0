import type { ClusterState } from '../model/state.js';
import type { ServiceKey } from '../model/types.js';

/** What one sync did, for logs and metrics. */
export interface SyncOutcome {
  readonly kind: 'full' | 'partial' | 'none';
  readonly bytes: number;
  /** Rules per table after the sync (kube-proxy's iptables_total), when known. */
  readonly ruleTotals: Readonly<Record<string, number>>;
  readonly chainsDeleted: number;
}

/**
 * The sync loop's view of a kernel backend: a pure compiler it feeds, and the few I/O steps around it.
 * One implementation per backend (iptables today).
 */
export interface ProxyBackend {
  readonly name: string;
  /** Re-renders these Services from `state`; pure and fast. */
  update(state: ClusterState, changed: Iterable<ServiceKey>): void;
  /** Topology changed (the node's zone): every Service must be re-rendered before the next (full) sync. */
  setNodeZone(state: ClusterState, zone: string | undefined): void;
  /**
   * Programs the kernel: everything (reading the live rules first) or only what changed since the last
   * successful sync. With `print`, the payload goes to `print` instead of the kernel. Throws ToolError
   * when a tool refuses its input: iptables leaves the kernel unchanged, IPVS
   * may have applied part of it; either way the loop's next sync is a full one, which reconciles.
   */
  sync(full: boolean, print?: (payload: Iterable<string>) => void): Promise<SyncOutcome>;
  /** False if our canary chain is gone: someone flushed the tables, so the next sync must be full. */
  canaryPresent(): Promise<boolean>;
}
