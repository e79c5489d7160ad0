import type { IPFamily } from '../../model/ip.js';
import { KUBE_LOOP_BACK, KUBE_LOOP_BACK_NEXT } from './skeleton.js';

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

/** Large enough for 100,000 endpoints with room; the kernel allocates as entries arrive. */
const MAX_ELEMENTS = 1 << 20;

/** An `ipset restore` create line; IPVS mode's sets use it too, so a set both backends name is created alike. */
export function createSetLine(name: string, type: string, family: IPFamily): string {
  return `create ${name} ${type} family ${family === 'IPv4' ? 'inet' : 'inet6'} hashsize 1024 maxelem ${MAX_ELEMENTS}\n`;
}

const createLine = (name: string, family: IPFamily): string => createSetLine(name, 'hash:ip,port,ip', family);

const PROTOCOLS = ['tcp', 'udp', 'sctp'];
const IP_SHIFT = 2 ** 19; // 16 bits of port and 3 of protocol below the address

/**
 * One KUBE-LOOP-BACK member (endpoint ip, proto:port, ip). IPv4 members are packed into one number (address,
 * port, protocol: 51 bits), since 100,000 of them as strings, in several maps, cost the agent some 25 MB.
 */
export type LoopbackKey = number | string;

export function loopbackKey(ip: string, proto: string, port: number): LoopbackKey {
  const octets = ip.split('.');
  const p = PROTOCOLS.indexOf(proto);
  if (octets.length !== 4 || p < 0) return `${ip},${proto}:${port},${ip}`;
  const address = ((Number(octets[0]) << 24) | (Number(octets[1]) << 16) | (Number(octets[2]) << 8) | Number(octets[3])) >>> 0;
  return address * IP_SHIFT + port * 8 + p;
}

/** The member's endpoint address, protocol and port. */
export function loopbackParts(key: LoopbackKey): { ip: string; proto: string; port: number } {
  if (typeof key === 'string') {
    const m = /^(.*),(\w+):(\d+),/.exec(key)!;
    return { ip: m[1]!, proto: m[2]!, port: Number(m[3]) };
  }
  const address = Math.floor(key / IP_SHIFT);
  const ip = [address >>> 24, (address >>> 16) & 255, (address >>> 8) & 255, address & 255].join('.');
  const rest = key % IP_SHIFT;
  return { ip, proto: PROTOCOLS[rest % 8]!, port: Math.floor(rest / 8) };
}

/** The member as ipset prints and parses it. */
export function loopbackEntry(key: LoopbackKey): string {
  if (typeof key === 'string') return key;
  const { ip, proto, port } = loopbackParts(key);
  return `${ip},${proto}:${port},${ip}`;
}

/**
 * The flat layout's KUBE-LOOP-BACK members: how many Services want each (Services can share an endpoint
 * ip:port) and whether the kernel holds it, packed in one map as count * 2 + held. Which members a partial
 * sync must look at comes from the caller (the members of the Services it covers, before and after), not
 * from a set kept here: that set held all 100,000 members across a first full sync. Pure, like the
 * compiler that owns it.
 */
export class LoopbackSet {
  private readonly members = new Map<LoopbackKey, number>();
  /** Held, but no longer in any rule the kernel holds: deleted by the next partial sync. */
  private readonly retired = new Set<LoopbackKey>();

  constructor(private readonly family: IPFamily) {}

  private wanted(k: LoopbackKey): boolean {
    return (this.members.get(k) ?? 0) >= 2;
  }

  private held(k: LoopbackKey): boolean {
    return ((this.members.get(k) ?? 0) & 1) === 1;
  }

  private update(k: LoopbackKey, v: number): void {
    if (v === 0) this.members.delete(k);
    else this.members.set(k, v);
  }

  /** One Service's members went from `before` to `after`. */
  replace(before: readonly LoopbackKey[] = [], after: readonly LoopbackKey[] = []): void {
    for (const k of before) this.update(k, Math.max(0, (this.members.get(k) ?? 0) - 2));
    for (const k of after) this.update(k, (this.members.get(k) ?? 0) + 2);
  }

  /** The whole set, filled aside and swapped in atomically, whatever the kernel held. */
  planFull(): { plan: IpsetPlan; commit: () => void } {
    const { members, commit } = this.fullMembers();
    const family = this.family;
    function* generate(): Generator<string> {
      yield createLine(KUBE_LOOP_BACK_NEXT, family) + `flush ${KUBE_LOOP_BACK_NEXT}\n`;
      for (const k of members) yield `add ${KUBE_LOOP_BACK_NEXT} ${loopbackEntry(k)}\n`;
      yield createLine(KUBE_LOOP_BACK, family) + `swap ${KUBE_LOOP_BACK_NEXT} ${KUBE_LOOP_BACK}\n` + `destroy ${KUBE_LOOP_BACK_NEXT}\n`;
    }
    return { plan: ipsetPlan({ [Symbol.iterator]: generate }), commit };
  }

  /**
   * Every wanted member, for a sync that replaces the whole set (the nftables backend's hairpin set too);
   * `commit` records that the kernel holds exactly these.
   */
  fullMembers(): { members: readonly LoopbackKey[]; commit: () => void } {
    // Only the members are snapshot (IPv4 ones as unboxed doubles); callers generate their lines while the
    // tool reads them.
    const snapshot: LoopbackKey[] = [];
    for (const [k, v] of this.members) if (v >= 2) snapshot.push(k);
    return {
      members: snapshot,
      commit: () => {
        for (const [k, v] of this.members) this.update(k, v & ~1);
        for (const k of snapshot) this.update(k, (this.members.get(k) ?? 0) | 1);
        this.retired.clear();
      },
    };
  }

  /**
   * `touched`: the members of the Services this sync covers, as the kernel's rules have them and as they will
   * be. Members that became wanted go in before the rules that DNAT to them. Members no rule needs any more are
   * deleted one sync later, with that sync's adds: a member nothing DNATs to matches no new flow, so leaving it
   * a little longer is harmless, and a sync then runs one ipset process instead of two. Undefined when no
   * member changes.
   */
  planPartial(touched: Iterable<LoopbackKey>): { plan: IpsetPlan; commit: () => void } | undefined {
    const changes = this.partialChanges(touched);
    if (changes === undefined) return undefined;
    const line = (op: string) => (k: LoopbackKey) => `${op} ${KUBE_LOOP_BACK} ${loopbackEntry(k)}\n`;
    return { plan: ipsetPlan([...changes.adds.map(line('add')), ...changes.dels.map(line('del'))]), commit: changes.commit };
  }

  /** planPartial's decision as members, for callers that write their own lines; undefined (committed) when none. */
  partialChanges(touched: Iterable<LoopbackKey>): { adds: LoopbackKey[]; dels: LoopbackKey[]; commit: () => void } | undefined {
    const covered = new Set(touched);
    const adds = [...covered].filter((k) => this.wanted(k) && !this.held(k));
    const dels = [...this.retired].filter((k) => !this.wanted(k) && this.held(k));
    const commit = (): void => {
      for (const k of adds) this.update(k, (this.members.get(k) ?? 0) | 1);
      for (const k of dels) this.update(k, (this.members.get(k) ?? 0) & ~1);
      this.retired.clear();
      // Removed from the rules by this sync: deletable from the next one on.
      for (const k of covered) if (!this.wanted(k) && this.held(k)) this.retired.add(k);
    };
    if (adds.length + dels.length === 0) {
      commit();
      return undefined;
    }
    return { adds, dels, commit };
  }

  /** Members wanted by at least one Service. */
  get size(): number {
    let n = 0;
    for (const v of this.members.values()) if (v >= 2) n++;
    return n;
  }
}

/** An ipset plan as `#` lines, so a printed payload stays valid iptables-restore input (dry run, `compile`). */
export function* ipsetPlanAsComments(plan: IpsetPlan): Generator<string> {
  yield '# ipset restore -exist, before iptables-restore:\n';
  // Every piece starts at a line start (the plans yield whole lines), so each can be commented on its own.
  for (const chunk of plan.chunks) yield chunk.replace(/^(?=.)/gm, '# ');
}
