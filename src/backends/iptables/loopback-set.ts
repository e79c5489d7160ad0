import type { IPFamily } from '../../model/ip.js';
import { KUBE_LOOP_BACK, KUBE_LOOP_BACK_NEXT } from './skeleton.js';

/** `ipset restore -exist` inputs around one iptables-restore: adds go first, deletes after. */
export interface IpsetPlan {
  /** Run before the iptables payload, so rules never name a missing set or miss a new endpoint. */
  readonly before: string;
  /** Run after it, once no rule needs the removed entries. */
  readonly after: string;
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
      plan: { before: lines.join(''), after: '' },
      commit: () => {
        this.applied = snapshot;
        for (const e of covered) this.dirty.delete(e);
      },
    };
  }

  /** Only the entries whose presence changed; undefined when none did. */
  planPartial(): { plan: IpsetPlan; commit: () => void } | undefined {
    const adds: string[] = [];
    const dels: string[] = [];
    const covered = [...this.dirty];
    for (const e of covered) {
      const want = this.wanted.has(e);
      if (want && !this.applied.has(e)) adds.push(e);
      else if (!want && this.applied.has(e)) dels.push(e);
    }
    const commit = (): void => {
      for (const e of adds) this.applied.add(e);
      for (const e of dels) this.applied.delete(e);
      for (const e of covered) this.dirty.delete(e);
    };
    if (adds.length + dels.length === 0) {
      commit();
      return undefined;
    }
    return {
      plan: {
        before: adds.map((e) => `add ${KUBE_LOOP_BACK} ${e}\n`).join(''),
        after: dels.map((e) => `del ${KUBE_LOOP_BACK} ${e}\n`).join(''),
      },
      commit,
    };
  }

  get size(): number {
    return this.wanted.size;
  }
}

/** An ipset plan as `#` lines, so a printed payload stays valid iptables-restore input (dry run, `compile`). */
export function ipsetPlanAsComments(plan: IpsetPlan): string {
  const section = (label: string, text: string): string =>
    text === '' ? '' : `# ${label}\n${text.replace(/^(?=.)/gm, '# ')}`;
  return (
    section('ipset restore -exist, before iptables-restore:', plan.before) +
    section('ipset restore -exist, after iptables-restore:', plan.after)
  );
}
