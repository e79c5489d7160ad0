// ipsets as `-m set --match-set` reads them: `ipset save` output (the kernel's sets) and `ipset restore`
// input (what `compile` prints) applied in order, so both end as sets of members by type. Pure.
import { parseIP } from '../../model/ip.js';
import { type Packet, TraceInputError, inCidr } from './types.js';

export interface Ipset {
  readonly name: string;
  readonly type: string;
  /** Members as written (`10.96.0.10,tcp:80`), IP parts canonical. */
  readonly members: Set<string>;
}

export class Ipsets {
  readonly sets = new Map<string, Ipset>();

  /** Applies `ipset restore` lines (create, add, del, flush, destroy, swap, rename); throws TraceInputError. */
  apply(text: string, source: string): this {
    const lines = text.split('\n');
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i]!.trim();
      if (line === '' || line.startsWith('#')) continue;
      const where = `${source} line ${i + 1}`;
      const [verb = '', name = '', arg = ''] = line.split(/\s+/);
      const need = (n: string): Ipset => {
        const s = this.sets.get(n);
        if (s === undefined) throw new TraceInputError(`${where}: no ipset ${n}`);
        return s;
      };
      switch (verb) {
        case 'create':
        case '-N':
          if (!this.sets.has(name)) this.sets.set(name, { name, type: arg, members: new Set() });
          break;
        case 'add':
        case '-A':
          need(name).members.add(canonicalMember(arg));
          break;
        case 'del':
        case '-D':
          need(name).members.delete(canonicalMember(arg));
          break;
        case 'flush':
        case '-F':
          if (name === '') for (const s of this.sets.values()) s.members.clear();
          else need(name).members.clear();
          break;
        case 'destroy':
        case '-X':
          if (name === '') this.sets.clear();
          else this.sets.delete(name);
          break;
        case 'swap':
        case '-W': {
          const a = need(name);
          const b = need(arg);
          this.sets.set(name, { ...b, name });
          this.sets.set(arg, { ...a, name: arg });
          break;
        }
        case 'rename':
        case '-E': {
          const a = need(name);
          this.sets.delete(name);
          this.sets.set(arg, { ...a, name: arg });
          break;
        }
        default:
          throw new TraceInputError(`${where}: "${line}" is not an ipset restore line`);
      }
    }
    return this;
  }

  /**
   * Whether the packet is in `name` along `flags` (`dst,dst,src`: the first dimension from the destination
   * address, the second from the destination port, ...). Throws for an unknown set or type.
   */
  matches(name: string, flags: string, p: Packet, where: string): boolean {
    const set = this.sets.get(name);
    if (set === undefined) throw new TraceInputError(`${where}: no ipset ${name}`);
    const dims = flags.split(',');
    const addr = (i: number): string => (dims[i] === 'src' ? p.src : p.dst);
    const port = (i: number): string => `${p.proto}:${dims[i] === 'src' ? '' : String(p.dport)}`;
    const type = set.type.replace(/^(hash|bitmap|list):/, '');
    const parts = type.split(',');
    if (parts.length > dims.length) throw new TraceInputError(`${where}: set ${name} (${set.type}) has ${parts.length} dimensions, the rule gives ${flags}`);
    // A source port is not known for a new connection: a set keyed by it never matches.
    if (parts.some((t, i) => t === 'port' && dims[i] === 'src')) return false;
    if (set.type === 'bitmap:port') return set.members.has(String(p.dport)) || [...set.members].some((m) => inRange(p.dport, m));
    for (const member of set.members) {
      const values = member.split(',');
      if (values.length !== parts.length) continue;
      const ok = parts.every((t, i) => {
        const v = values[i]!;
        switch (t) {
          case 'ip':
            return v.includes('/') ? inCidr(addr(i), v, where) : v === addr(i);
          case 'net':
            return inCidr(addr(i), v, where);
          case 'port':
            return v === port(i) || (!v.includes(':') && `tcp:${v}` === port(i));
          default:
            throw new TraceInputError(`${where}: set ${name}: type ${set.type} is not understood`);
        }
      });
      if (ok) return true;
    }
    return false;
  }
}

/** Canonical IPs in a member (`fd00:0::1,tcp:80` → `fd00::1,tcp:80`), so lookups compare text. */
function canonicalMember(member: string): string {
  return member
    .split(',')
    .map((part) => {
      const slash = part.indexOf('/');
      const ip = parseIP(slash < 0 ? part : part.slice(0, slash));
      return ip === undefined ? part : slash < 0 ? ip.text : `${ip.text}${part.slice(slash)}`;
    })
    .join(',');
}

function inRange(port: number, member: string): boolean {
  const m = /^(\d+)-(\d+)$/.exec(member);
  return m !== null && port >= Number(m[1]) && port <= Number(m[2]);
}
