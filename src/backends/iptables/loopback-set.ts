import type { IPFamily } from '../../model/ip.js';
import { KUBE_LOOP_BACK, KUBE_LOOP_BACK_NEXT } from './skeleton.js';

/**
 * The `ipset restore -exist` input of one sync, run before its iptables payload so rules never name a missing
 * set or DNAT to an endpoint the set lacks. (Deletions wait for the next sync: see LoopbackSet.planPartial.)
 */
export interface IpsetPlan {
  readonly input: string;
}

/** Large enough for 100,000 endpoints with room; the kernel allocates as entries arrive. */
const MAX_ELEMENTS = 1 << 20;

function createLine(name: string, family: IPFamily): string {
  return `create ${name} hash:ip,port,ip family ${family === 'IPv4' ? 'inet' : 'inet6'} hashsize 1024 maxelem ${MAX_ELEMENTS}\n`;
}

/**
 * The flat layout's KUBE-LOOP-BACK members: wanted (with a count, since Services can share an endpoint ip:port)
 * and applied (what the kernel holds), with the entries that changed since the last commit. Pure, like the
 * compiler that owns it.
 */
export class LoopbackSet {
  private readonly wanted = new Map<string, number>();
  private applied = new Set<string>();
  private readonly dirty = new Set<string>();
  /** In the kernel's set, but no longer in any rule the kernel holds: deleted by the next partial sync. */
  private readonly retired = new Set<string>();

  constructor(private readonly family: IPFamily) {}

  /** One Service's entries went from `before` to `after`. */
  replace(before: readonly string[] = [], after: readonly string[] = []): void {
    for (const e of before) {
      const n = (this.wanted.get(e) ?? 0) - 1;
      if (n > 0) this.wanted.set(e, n);
      else this.wanted.delete(e);
      this.dirty.add(e);
    }
    for (const e of after) {
      this.wanted.set(e, (this.wanted.get(e) ?? 0) + 1);
      this.dirty.add(e);
    }
  }

  /** The whole set, filled aside and swapped in atomically, whatever the kernel held. */
  planFull(): { plan: IpsetPlan; commit: () => void } {
    const lines = [createLine(KUBE_LOOP_BACK_NEXT, this.family), `flush ${KUBE_LOOP_BACK_NEXT}\n`];
    for (const e of this.wanted.keys()) lines.push(`add ${KUBE_LOOP_BACK_NEXT} ${e}\n`);
    lines.push(createLine(KUBE_LOOP_BACK, this.family), `swap ${KUBE_LOOP_BACK_NEXT} ${KUBE_LOOP_BACK}\n`, `destroy ${KUBE_LOOP_BACK_NEXT}\n`);
    const snapshot = new Set(this.wanted.keys());
    const covered = [...this.dirty];
    return {
      plan: { input: lines.join('') },
      commit: () => {
        this.applied = snapshot;
        this.retired.clear();
        for (const e of covered) this.dirty.delete(e);
      },
    };
  }

  /**
   * Entries that became wanted go in before the rules that DNAT to them. Entries no rule needs any more are
   * deleted one sync later, with that sync's adds: an entry nothing DNATs to matches no new flow, so leaving it
   * a little longer is harmless, and a sync then runs one ipset process instead of two. Undefined when no
   * entry changes.
   */
  planPartial(): { plan: IpsetPlan; commit: () => void } | undefined {
    const adds: string[] = [];
    const covered = [...this.dirty];
    for (const e of covered) if (this.wanted.has(e) && !this.applied.has(e)) adds.push(e);
    const dels = [...this.retired].filter((e) => !this.wanted.has(e) && this.applied.has(e));
    const commit = (): void => {
      for (const e of adds) this.applied.add(e);
      for (const e of dels) this.applied.delete(e);
      this.retired.clear();
      // Removed from the rules by this sync: deletable from the next one on.
      for (const e of covered) {
        this.dirty.delete(e);
        if (!this.wanted.has(e) && this.applied.has(e)) this.retired.add(e);
      }
    };
    if (adds.length + dels.length === 0) {
      commit();
      return undefined;
    }
    return {
      plan: { input: [...adds.map((e) => `add ${KUBE_LOOP_BACK} ${e}\n`), ...dels.map((e) => `del ${KUBE_LOOP_BACK} ${e}\n`)].join('') },
      commit,
    };
  }

  get size(): number {
    return this.wanted.size;
  }
}

/** An ipset plan as `#` lines, so a printed payload stays valid iptables-restore input (dry run, `compile`). */
export function ipsetPlanAsComments(plan: IpsetPlan): string {
  return `# ipset restore -exist, before iptables-restore:\n${plan.input.replace(/^(?=.)/gm, '# ')}`;
}
