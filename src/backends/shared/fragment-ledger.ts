import type { ServiceKey } from '../../model/types.js';

/** One Service's fragment as the kernel holds it (`before`) and as it is wanted (`after`); undefined: none. */
export interface FragmentChange<F> {
  readonly key: ServiceKey;
  readonly before: F | undefined;
  readonly after: F | undefined;
}

/** A full or partial sync's share of the ledger, and how to settle it once the kernel took it (or refused). */
export interface LedgerTake<T> {
  readonly take: T;
  /** The kernel holds what the take covered. */
  commit(): void;
  /** The kernel refused: what the take covered stays pending. */
  abort(): void;
}

/**
 * Every backend's incremental bookkeeping, once: the fragment each Service wants, the fragment the kernel
 * holds (as of the last committed sync), and the Services whose two may differ. A full sync takes every
 * wanted fragment; a partial one takes the pending changes. Backends keep only rendering and diffing.
 */
export class FragmentLedger<F> {
  private readonly wanted = new Map<ServiceKey, F>();
  private applied = new Map<ServiceKey, F>();
  private pending = new Set<ServiceKey>();

  /** The Service now wants `fragment` (undefined: it is gone); returns the fragment it wanted before. */
  set(key: ServiceKey, fragment: F | undefined): F | undefined {
    const before = this.wanted.get(key);
    if (fragment === undefined) this.wanted.delete(key);
    else this.wanted.set(key, fragment);
    this.pending.add(key);
    return before;
  }

  get(key: ServiceKey): F | undefined {
    return this.wanted.get(key);
  }

  /** The fragment the kernel holds for this Service, as of the last commit. */
  appliedOf(key: ServiceKey): F | undefined {
    return this.applied.get(key);
  }

  get size(): number {
    return this.wanted.size;
  }

  /** Every wanted fragment in Service key order, so every output is deterministic. */
  sorted(): F[] {
    return [...this.wanted.keys()].sort().map((k) => this.wanted.get(k) as F);
  }

  /** Everything wanted, for a full sync: committing makes it the applied state. */
  takeFull(): LedgerTake<readonly F[]> {
    const snapshot = new Map(this.wanted);
    const covered = this.takePending();
    return {
      take: [...snapshot.keys()].sort().map((k) => snapshot.get(k) as F),
      commit: () => {
        this.applied = snapshot;
      },
      abort: () => this.restorePending(covered),
    };
  }

  /** The pending Services' changes, for a partial sync: committing applies each `after`. */
  takePartial(): LedgerTake<readonly FragmentChange<F>[]> {
    const covered = this.takePending();
    const changes = [...covered].map((key) => ({ key, before: this.applied.get(key), after: this.wanted.get(key) }));
    return {
      take: changes,
      commit: () => {
        for (const { key, after } of changes) {
          if (after === undefined) this.applied.delete(key);
          else this.applied.set(key, after);
        }
      },
      abort: () => this.restorePending(covered),
    };
  }

  private takePending(): Set<ServiceKey> {
    const covered = this.pending;
    this.pending = new Set();
    return covered;
  }

  private restorePending(covered: ReadonlySet<ServiceKey>): void {
    for (const key of covered) this.pending.add(key);
  }
}
