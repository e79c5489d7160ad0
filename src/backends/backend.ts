// The contract between the sync loop and a kernel backend: the backend renders Services and plans what the
// kernel must do as steps (reading live state where it must); an applier runs, prints or fakes those steps
// (sync/applier.ts). Commit and abort tell the backend whether the kernel took the plan.
import type { Step } from '../kernel/tool.js';
import type { ClusterState } from '../model/state.js';
import type { ServiceKey } from '../model/types.js';

export const BACKENDS = ['iptables', 'ipvs', 'nftables'] as const;
export type BackendName = (typeof BACKENDS)[number];

/** Counts a plan reports for logs and metrics. */
export interface PlanStats {
  /** Rules per table after the sync (kube-proxy's iptables_total), where the backend counts them. */
  readonly ruleTotals: Readonly<Record<string, number>>;
  /** Rules per table this sync writes (kube-proxy's iptables_last), where the backend counts them. */
  readonly rulesWritten: Readonly<Record<string, number>>;
  /** Chains (and nftables sets) this sync deletes. */
  readonly deleted: number;
}

/** What one sync asks of the kernel, in order, and what the backend remembers once it is applied. */
export interface Plan {
  readonly kind: 'full' | 'partial';
  readonly steps: readonly Step[];
  readonly stats: PlanStats;
  /** The kernel took every step: the plan's state becomes the applied state. */
  commit(): void;
  /** A step failed: what the plan covered stays pending (the caller's next sync is a full one). */
  abort(): void;
}

export interface PlanOptions {
  /**
   * Whether the backend may read the kernel (a full sync's live rules, IPVS's table and counters). A dry run
   * never does: it plans as onto a node without our rules.
   */
  readonly readKernel: boolean;
}

/** A kernel backend as the sync loop drives it. */
export interface ProxyBackend {
  readonly name: BackendName;
  /** Services rendered (the state's, as of the last update). */
  readonly serviceCount: number;
  /** Re-renders these Services from `state`; pure and fast. */
  update(state: ClusterState, changed: Iterable<ServiceKey>): void;
  /**
   * Everything (`full`, over what the kernel holds) or only what changed since the last committed plan;
   * undefined when nothing is to be done. Throws ToolError when reading the kernel fails.
   */
  plan(full: boolean, options: PlanOptions): Promise<Plan | undefined>;
  /** False if our canary (chain, table, device) is gone: someone flushed our rules, so the next sync must be full. */
  canaryPresent(): Promise<boolean>;
}

/** A plan that writes nothing and commits `commit`: the kernel already holds what it would write. */
export const NO_STATS: PlanStats = { ruleTotals: {}, rulesWritten: {}, deleted: 0 };

/**
 * One part of `switchboard cleanup`: a family's iptables rules, IPVS mode's virtual servers, nftables mode's
 * tables, the ipsets. It reads the machine and plans removal steps; the CLI prints or applies them.
 */
export interface CleanupStage {
  /** How the summary names it: `IPv4`, `ipvs`, `ipsets`. */
  readonly name: string;
  /** A stage that cannot read the machine is skipped, not failed (IPv6 without ip6tables, as kube-proxy). */
  readonly bestEffort: boolean;
  plan(): Promise<CleanupPlan>;
}

export interface CleanupPlan {
  readonly steps: readonly Step[];
  /** The summary once the steps ran (`removed 3 virtual servers`), or why there are none (`nothing to remove`). */
  readonly done: string;
  /** The summary of a dry run (`would remove 3 virtual servers`). */
  readonly wouldDo: string;
}

export function nothingToRemove(why = 'nothing to remove'): CleanupPlan {
  return { steps: [], done: why, wouldDo: why };
}

/** What a backend leaves behind and how to remove it: rule stages, then the ipsets it may have created. */
export interface BackendCleanup {
  readonly stages: readonly CleanupStage[];
  /** Destroyed after every backend's rules are gone (a rule naming a set keeps it busy). */
  readonly sets: readonly string[];
}
