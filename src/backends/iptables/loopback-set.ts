import type { IPFamily } from '../../model/ip.js';
import { createSetLine } from '../../kernel/syntax/ipset.js';
import { type HairpinKey, HairpinMembers, hairpinParts } from '../shared/hairpin-members.js';
import { loopbackSetNames } from '../shared/iptables-fixed.js';

/**
 * The `ipset restore -exist` input of one sync, run before its iptables payload so rules never name a missing
 * set or DNAT to an endpoint the set lacks. (Deletions wait for the next sync: see LoopbackSet.planPartial.)
 */
export interface IpsetPlan {
  /** The input in pieces, generated afresh on each iteration: a full sync's 100,000 members are never one string. */
  readonly chunks: Iterable<string>;
  /** The whole input, joined on first use (tests, error reports, printing). */
  readonly input: string;
}

function ipsetPlan(chunks: Iterable<string>): IpsetPlan {
  let joined: string | undefined;
  return {
    chunks,
    get input(): string {
      joined ??= [...chunks].join('');
      return joined;
    },
  };
}

const createLine = (name: string, family: IPFamily): string => createSetLine(name, 'hash:ip,port,ip', family);

/** The member as ipset prints and parses it. */
export function loopbackEntry(key: HairpinKey): string {
  if (typeof key === 'string') return key;
  const { ip, proto, port } = hairpinParts(key);
  return `${ip},${proto}:${port},${ip}`;
}

/**
 * The flat layout's KUBE-LOOP-BACK set (KUBE-6-LOOP-BACK for IPv6: ipset names are global): the hairpin members,
 * and the ipset input that keeps the kernel's set in step.
 */
export class LoopbackSet extends HairpinMembers {
  private readonly names: { readonly live: string; readonly next: string };

  constructor(private readonly family: IPFamily) {
    super();
    this.names = loopbackSetNames(family);
  }

  /** The whole set, filled aside and swapped in atomically, whatever the kernel held. */
  planFull(): { plan: IpsetPlan; commit: () => void } {
    const { members, commit } = this.fullMembers();
    const family = this.family;
    const { live, next } = this.names;
    function* generate(): Generator<string> {
      yield createLine(next, family) + `flush ${next}\n`;
      for (const k of members) yield `add ${next} ${loopbackEntry(k)}\n`;
      yield createLine(live, family) + `swap ${next} ${live}\n` + `destroy ${next}\n`;
    }
    return { plan: ipsetPlan({ [Symbol.iterator]: generate }), commit };
  }

  /**
   * `touched`: the members of the Services this sync covers, as the kernel's rules have them and as they will
   * be. Members that became wanted go in before the rules that DNAT to them. Members no rule needs any more are
   * deleted one sync later, with that sync's adds: a member nothing DNATs to matches no new flow, so leaving it
   * a little longer is harmless, and a sync then runs one ipset process instead of two. Undefined when no
   * member changes.
   */
  planPartial(touched: Iterable<HairpinKey>): { plan: IpsetPlan; commit: () => void } | undefined {
    const changes = this.partialChanges(touched);
    if (changes === undefined) return undefined;
    const live = this.names.live;
    const line = (op: string) => (k: HairpinKey) => `${op} ${live} ${loopbackEntry(k)}\n`;
    return { plan: ipsetPlan([...changes.adds.map(line('add')), ...changes.dels.map(line('del'))]), commit: changes.commit };
  }

}

/** An ipset plan as `#` lines, so a printed payload stays valid iptables-restore input (dry run, `compile`). */
export function* ipsetPlanAsComments(plan: IpsetPlan): Generator<string> {
  yield '# ipset restore -exist, before iptables-restore:\n';
  // Every piece starts at a line start (the plans yield whole lines), so each can be commented on its own.
  for (const chunk of plan.chunks) yield chunk.replace(/^(?=.)/gm, '# ');
}
