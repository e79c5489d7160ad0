// The hairpin members of the flat iptables layout's KUBE-LOOP-BACK set and of nftables mode's hairpin set: which
// endpoints (ip, protocol, port) some Service DNATs to, and which of them the kernel holds. Pure.
import { ipv4Number } from '../../model/ip.js';

const PROTOCOLS = ['tcp', 'udp', 'sctp'];
const IP_SHIFT = 2 ** 19; // 16 bits of port and 3 of protocol below the address

/**
 * One member (endpoint ip, proto, port). IPv4 members are packed into one number (address, port, protocol: 51
 * bits), since 100,000 of them as strings, in several maps, cost the agent some 25 MB.
 */
export type HairpinKey = number | string;

export function hairpinKey(ip: string, proto: string, port: number): HairpinKey {
  const address = ipv4Number(ip);
  const p = PROTOCOLS.indexOf(proto);
  if (address === undefined || p < 0) return `${ip},${proto}:${port},${ip}`;
  return address * IP_SHIFT + port * 8 + p;
}

/** The member's endpoint address, protocol and port. */
export function hairpinParts(key: HairpinKey): { ip: string; proto: string; port: number } {
  if (typeof key === 'string') {
    const m = /^(.*),(\w+):(\d+),/.exec(key);
    if (m === null) throw new Error(`malformed hairpin member ${key}`);
    return { ip: m[1]!, proto: m[2]!, port: Number(m[3]) };
  }
  const address = Math.floor(key / IP_SHIFT);
  const ip = [address >>> 24, (address >>> 16) & 255, (address >>> 8) & 255, address & 255].join('.');
  const rest = key % IP_SHIFT;
  return { ip, proto: PROTOCOLS[rest % 8]!, port: Math.floor(rest / 8) };
}

/**
 * The members: how many Services want each (Services can share an endpoint ip:port) and whether the kernel
 * holds it, packed in one map as count * 2 + held. Which members a partial sync must look at comes from the
 * caller (the members of the Services it covers, before and after), not from a set kept here: that set held
 * all 100,000 members across a first full sync.
 */
export class HairpinMembers {
  private readonly members = new Map<HairpinKey, number>();
  /** Held, but no longer in any rule the kernel holds: deleted by the next partial sync. */
  private readonly retired = new Set<HairpinKey>();

  private wanted(k: HairpinKey): boolean {
    return (this.members.get(k) ?? 0) >= 2;
  }

  private held(k: HairpinKey): boolean {
    return ((this.members.get(k) ?? 0) & 1) === 1;
  }

  private update(k: HairpinKey, v: number): void {
    if (v === 0) this.members.delete(k);
    else this.members.set(k, v);
  }

  /** One Service's members went from `before` to `after`. */
  replace(before: readonly HairpinKey[] = [], after: readonly HairpinKey[] = []): void {
    for (const k of before) this.update(k, Math.max(0, (this.members.get(k) ?? 0) - 2));
    for (const k of after) this.update(k, (this.members.get(k) ?? 0) + 2);
  }

  /**
   * Every wanted member, for a sync that replaces the whole set ;
   * `commit` records that the kernel holds exactly these.
   */
  fullMembers(): { members: readonly HairpinKey[]; commit: () => void } {
    // Only the members are snapshot (IPv4 ones as unboxed doubles); callers generate their lines while the
    // tool reads them.
    const snapshot: HairpinKey[] = [];
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

  /** Members to add (wanted, not held) and delete (retired one sync ago); see the iptables LoopbackSet; undefined (committed) when none. */
  partialChanges(touched: Iterable<HairpinKey>): { adds: HairpinKey[]; dels: HairpinKey[]; commit: () => void } | undefined {
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
