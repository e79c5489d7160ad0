// A packet tracer over an nftables table as the fake kernel holds it (test/support/fakes/nft.ts), with
// upstream's conventions (nftables/helpers_test.go tracePacket, summarised in the external-traffic reference
// §10.0): the prerouting hook's chains in priority order (filter pre-DNAT, then nat), the destination rewritten
// to the first DNAT target, then filter forward and filter input (as upstream, both), then nat postrouting.
// Every branch of a `numgen` (an anonymous vmap or our @service-endpoints map) is explored, so the output lists
// every endpoint a new connection may reach; drop/reject give DROP/REJECT and end the trace. `ct state new` is
// true (new connections only), dynamic (affinity) sets are empty, `fib saddr|daddr type local` is true for the
// given local IPs. The output hook's chains are not run: as upstream, every packet enters through prerouting.
//
// masq is whether nat postrouting masquerades the packet, so it covers both the mark (upstream's
// `jump mark-for-masquerade`, our inline `meta mark set meta mark | 0x4000`, read back by the masquerading
// chain) and our hairpin set. Only the expression forms our backend emits are understood: anything else
// throws, so no rule is ever skipped silently. Test support only.
import { cidrContains, joinHostPort, parseCidrMasked, parseIP } from '../../src/model/ip.js';
import type { FakeTableView } from './fakes/nft.js';
import type { Packet, Trace as IptablesTrace } from './iptables-tracer.js';

/** The iptables tracer's packet and result, so flow tables read the same over both backends. */
export type { Packet } from './iptables-tracer.js';

export interface Trace extends IptablesTrace {
  /** The rules that matched, in order, for failure messages. */
  readonly matched: readonly string[];
}

export class NftTraceError extends Error {
  override readonly name = 'NftTraceError';
}

/** How a rule, chain or verdict ends: on to the next rule, back to the calling chain, or a terminal verdict. */
type Flow = 'next' | 'return' | 'stop';

interface State {
  readonly family: 'IPv4' | 'IPv6';
  readonly src: string;
  dst: string;
  dport: number;
  readonly proto: string;
  mark: number;
  dnat: boolean;
  masq: boolean;
  verdict: 'DROP' | 'REJECT' | undefined;
  readonly outputs: string[];
  readonly matched: string[];
}

type SelectorKind = 'addr' | 'proto' | 'port';
interface Selector {
  readonly kind: SelectorKind;
  /** The packet's values (several for `numgen`, none for `tcp dport` on a UDP packet). */
  readonly values: readonly string[];
}

function inCidr(ip: string, cidr: string): boolean {
  const masked = parseCidrMasked(cidr.includes('/') ? cidr : `${cidr}/${cidr.includes(':') ? 128 : 32}`);
  if (masked === undefined) throw new NftTraceError(`not an address: ${cidr}`);
  return cidrContains(masked, ip);
}

const matches = (kind: SelectorKind, value: string, literal: string): boolean => (kind === 'addr' ? inCidr(value, literal) : value === literal);

const HOOK_ORDER = ['prerouting', 'forward', 'input', 'postrouting'] as const;

/** One rule's text, read left to right. */
class Cursor {
  private pos = 0;
  constructor(readonly text: string) {}

  get done(): boolean {
    return this.pos >= this.text.length;
  }

  /** Consumes `re` (anchored here, then the spaces after it) and returns its groups, or undefined. */
  take(re: RegExp): RegExpExecArray | undefined {
    const sticky = new RegExp(re.source, 'y');
    sticky.lastIndex = this.pos;
    const m = sticky.exec(this.text);
    if (m === null) return undefined;
    this.pos = sticky.lastIndex;
    while (this.text[this.pos] === ' ') this.pos++;
    return m;
  }

  fail(what: string): never {
    throw new NftTraceError(`${what} at "${this.text.slice(this.pos)}" in rule "${this.text}"`);
  }
}

class Tracer {
  constructor(
    private readonly table: FakeTableView,
    private readonly local: ReadonlySet<string>,
    private readonly st: State,
  ) {}

  private chainRules(name: string): readonly string[] {
    const chain = this.table.chains.get(name);
    if (chain === undefined) throw new NftTraceError(`no chain ${name}`);
    return chain.rules;
  }

  private elements(name: string, kind: 'set' | 'map'): ReadonlyMap<string, string> {
    const set = this.table.sets.get(name);
    if (set === undefined || set.kind !== kind) throw new NftTraceError(`no ${kind} ${name}`);
    return set.elements;
  }

  /** Runs one chain; 'return' when it falls off its end or returns. */
  runChain(name: string, depth = 0): Flow {
    if (depth > 32) throw new NftTraceError(`jump loop at ${name}`);
    for (const rule of this.chainRules(name)) {
      const flow = this.runRule(rule, depth);
      if (flow !== 'next') return flow;
    }
    return 'return';
  }

  /** A verdict (a rule's last word, or a vmap's value); parsed only (and 'next') when not `live`. */
  private verdict(text: string, depth: number, live: boolean): Flow {
    const c = new Cursor(text);
    const flow = this.verdictAt(c, depth, live) ?? c.fail('not a verdict');
    if (!c.done) c.fail('words after a verdict');
    return flow;
  }

  private verdictAt(c: Cursor, depth: number, live: boolean): Flow | undefined {
    let m: RegExpExecArray | undefined;
    if ((m = c.take(/(jump|goto) (\S+)/))) {
      this.chainRules(m[2]!);
      if (!live) return 'next';
      const flow = this.runChain(m[2]!, depth + 1);
      if (flow === 'stop') return 'stop';
      return m[1] === 'jump' ? 'next' : 'return';
    }
    if ((m = c.take(/(drop|reject)\b/))) {
      if (!live) return 'next';
      this.st.verdict = m[1] === 'drop' ? 'DROP' : 'REJECT';
      this.st.outputs.push(this.st.verdict);
      return 'stop';
    }
    if (c.take(/return\b/)) return live ? 'return' : 'next';
    if (c.take(/accept\b/)) return live ? 'stop' : 'next';
    return undefined;
  }

  /** Every branch (a `numgen` explores them all); they must agree on how the rule ends. */
  private branches(verdicts: readonly string[], depth: number): Flow {
    const flows = new Set(verdicts.map((v) => this.verdict(v, depth, true)));
    if (flows.size > 1) throw new NftTraceError(`branches end differently: ${verdicts.join(' | ')}`);
    return flows.size === 0 ? 'next' : [...flows][0]!;
  }

  private selector(c: Cursor): Selector | undefined {
    const st = this.st;
    let m: RegExpExecArray | undefined;
    if ((m = c.take(/(ip6?) (saddr|daddr)\b/))) {
      if ((m[1] === 'ip') !== (st.family === 'IPv4')) c.fail(`${m[1]} match on an ${st.family} packet`);
      return { kind: 'addr', values: [m[2] === 'saddr' ? st.src : st.dst] };
    }
    if (c.take(/meta l4proto\b/)) return { kind: 'proto', values: [st.proto] };
    if (c.take(/th dport\b/)) return { kind: 'port', values: [String(st.dport)] };
    if ((m = c.take(/(tcp|udp|sctp) dport\b/))) return { kind: 'port', values: m[1] === st.proto ? [String(st.dport)] : [] };
    if ((m = c.take(/numgen random mod (\d+)\b/))) return { kind: 'port', values: Array.from({ length: Number(m[1]) }, (_, i) => String(i)) };
    return undefined;
  }

  /** `a . b . c`: the selectors, at least one. */
  private concat(c: Cursor): Selector[] | undefined {
    const first = this.selector(c);
    if (first === undefined) return undefined;
    const out = [first];
    while (c.take(/\.(?= )/)) out.push(this.selector(c) ?? c.fail('not a selector'));
    return out;
  }

  /** The packet's keys for a concatenation (one per `numgen` branch), each as its components. */
  private static keys(sels: readonly Selector[]): string[][] {
    let keys: string[][] = [[]];
    for (const s of sels) keys = keys.flatMap((k) => s.values.map((v) => [...k, v]));
    return keys;
  }

  /** The values of the elements a key matches (addresses by prefix, the rest exactly). */
  private static lookup(sels: readonly Selector[], key: readonly string[], elements: ReadonlyMap<string, string>): string[] {
    const out: string[] = [];
    for (const [ek, value] of elements) {
      const parts = ek.split(' . ');
      if (parts.length !== sels.length) throw new NftTraceError(`element ${ek} does not have ${sels.length} parts`);
      if (parts.every((p, i) => matches(sels[i]!.kind, key[i]!, p))) out.push(value);
    }
    return out;
  }

  /**
   * Runs a rule: conditions left to right, then its statements and verdict. The whole rule is always read: once
   * a condition fails (or when `live` is false from the start) the rest is parsed, not run.
   */
  runRule(rule: string, depth: number, live = true): Flow {
    const body = rule.replace(/ comment "[^"]*"$/, '');
    const c = new Cursor(body);
    const st = this.st;
    const matched = (): void => {
      if (live) st.matched.push(rule);
    };
    const when = (cond: boolean): void => {
      if (!cond) live = false;
    };
    let m: RegExpExecArray | undefined;
    while (!c.done) {
      // Conditions: false ends the rule.
      if (c.take(/ct state new\b/)) continue;
      if (c.take(/ct status dnat\b/)) {
        when(st.dnat);
        continue;
      }
      if ((m = c.take(/fib (saddr|daddr) type local\b/))) {
        when(this.local.has(m[1] === 'saddr' ? st.src : st.dst));
        continue;
      }
      if ((m = c.take(/meta mark & (0x[0-9a-f]+) (==|!=) (0x[0-9a-f]+|\d+)(?= |$)/))) {
        when((m[2] === '==') === ((st.mark & Number(m[1])) === Number(m[3])));
        continue;
      }
      // Statements.
      if ((m = c.take(/meta mark set meta mark (\||\^) (0x[0-9a-f]+)(?= |$)/))) {
        if (!live) continue;
        matched();
        st.mark = m[1] === '|' ? st.mark | Number(m[2]) : st.mark ^ Number(m[2]);
        continue;
      }
      if ((m = c.take(/update @(\S+) \{ (ip6?) saddr \}/))) {
        this.elements(m[1]!, 'set'); // a dynamic set: the tracer keeps no affinity
        continue;
      }
      if (c.take(/masquerade( fully-random)?$/)) {
        if (!live) return 'next';
        matched();
        st.masq = true;
        return 'stop';
      }
      if ((m = c.take(/dnat to ((?:\d+\.){3}\d+|\[[0-9a-f:]+\]):(\d+)$/))) {
        if (!live) return 'next';
        matched();
        st.outputs.push(`${m[1]}:${m[2]}`);
        st.dnat = true;
        return 'stop';
      }
      if (c.take(/dnat to\b/)) {
        const sels = this.concat(c) ?? c.fail('not a dnat map key');
        const name = c.take(/map @(\S+)$/)?.[1] ?? c.fail('not a dnat map');
        const elements = this.elements(name, 'map');
        if (!live) return 'next';
        const targets = Tracer.keys(sels).flatMap((k) => Tracer.lookup(sels, k, elements));
        if (targets.length === 0) return 'next'; // no element: the expression breaks, as in nft
        matched();
        for (const t of targets) {
          const [ip, port] = t.split(' . ');
          if (ip === undefined || port === undefined || parseIP(ip) === undefined) throw new NftTraceError(`map ${name}: not an address . port: ${t}`);
          st.outputs.push(joinHostPort(ip, Number(port)));
        }
        st.dnat = true;
        return 'stop';
      }
      const flow = this.verdictAt(c, depth, live);
      if (flow !== undefined) {
        if (!c.done) c.fail('words after a verdict');
        matched();
        return flow;
      }
      // Selector expressions: lookups, vmaps, comparisons.
      const sels = this.concat(c) ?? c.fail('not understood');
      const keys = Tracer.keys(sels);
      if ((m = c.take(/vmap @(\S+)$/)) || (m = c.take(/vmap \{ (.*) \}$/))) {
        const named = m[0].startsWith('vmap @');
        const elements = named ? this.elements(m[1]!, 'map') : anonymousVmap(m[1]!);
        if (!named) for (const v of elements.values()) this.verdict(v, depth, false);
        if (!live) return 'next';
        const verdicts = keys.flatMap((k) => Tracer.lookup(sels, k, elements));
        if (verdicts.length === 0) return 'next';
        matched();
        return this.branches(verdicts, depth);
      }
      if ((m = c.take(/@(\S+)/))) {
        const elements = this.elements(m[1]!, 'set');
        when(keys.some((k) => Tracer.lookup(sels, k, elements).length > 0));
        continue;
      }
      if (sels.length !== 1) c.fail('a concatenation outside a lookup');
      const sel = sels[0]!;
      const negate = c.take(/!=/) !== undefined;
      const list = c.take(/\{ ([^}]*) \}/)?.[1]?.split(' , ') ?? [c.take(/[^\s{}]+/)?.[0] ?? c.fail('no value')];
      const hit = sel.values.some((v) => list.some((l) => matches(sel.kind, v, l)));
      // A protocol-specific selector on another protocol never matches, negated or not.
      when(sel.values.length > 0 && hit !== negate);
    }
    return 'next';
  }
}

function anonymousVmap(text: string): Map<string, string> {
  return new Map(
    text.split(' , ').map((e) => {
      const [k, v] = e.split(' : ');
      if (k === undefined || v === undefined) throw new NftTraceError(`not a vmap entry: ${e}`);
      return [k, v] as const;
    }),
  );
}

/** Base chains of one hook, by priority. */
function hookChains(table: FakeTableView, hook: (typeof HOOK_ORDER)[number]): { name: string; type: string }[] {
  const out: { name: string; type: string; priority: number }[] = [];
  for (const [name, chain] of table.chains) {
    if (chain.base === undefined) continue;
    const m = /^type (filter|nat) hook (prerouting|input|forward|output|postrouting) priority (-?\d+)$/.exec(chain.base);
    if (m === null) throw new NftTraceError(`chain ${name}: base "${chain.base}" not understood`);
    if (m[2] === hook) out.push({ name, type: m[1]!, priority: Number(m[3]) });
  }
  return out.sort((a, b) => a.priority - b.priority);
}

const checked = new WeakSet<FakeTableView>();

/**
 * Traces a new connection `packet` through `table` (the fake kernel's view after a sync); `localIPs` are the
 * node's addresses (`fib ... type local`).
 */
export function tracePacket(table: FakeTableView, packet: Packet, localIPs: readonly string[]): Trace {
  const family = parseIP(packet.dst)?.family ?? 'IPv4';
  const st: State = {
    family,
    src: packet.src,
    dst: packet.dst,
    dport: packet.dport,
    proto: packet.proto ?? 'tcp',
    mark: 0,
    dnat: false,
    masq: false,
    verdict: undefined,
    outputs: [],
    matched: [],
  };
  const tracer = new Tracer(table, new Set(localIPs), st);
  // Every rule of the table is read once, whether the packet reaches it or not.
  if (!checked.has(table)) {
    for (const chain of table.chains.values()) for (const rule of chain.rules) tracer.runRule(rule, 0, false);
    checked.add(table);
  }
  const result = (): Trace => ({ output: st.outputs.join(', '), masq: st.masq, matched: st.matched });
  for (const hook of HOOK_ORDER) {
    for (const chain of hookChains(table, hook)) {
      tracer.runChain(chain.name);
      if (st.verdict !== undefined) return result();
      // Pending DNAT applies once the nat chain is done: later chains see the (first) endpoint.
      if (chain.type === 'nat' && hook === 'prerouting' && st.outputs.length > 0) {
        const first = st.outputs[0]!;
        const colon = first.lastIndexOf(':');
        st.dst = first.slice(0, colon).replace(/^\[|\]$/g, '');
        st.dport = Number(first.slice(colon + 1));
      }
    }
  }
  return result();
}
