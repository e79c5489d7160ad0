// The nftables interpreter: a new connection's first packet walked through one nftables table, base chains
// by hook and priority as the kernel runs them, jumps, gotos and verdict maps followed, every `numgen` branch
// explored with its share. It reads the table only: `nft -f` input (what `compile` prints) or `nft list`
// output (what the kernel holds) give the same answers. A new connection: `ct state new`, `ct status dnat` once
// translated, dynamic (affinity) sets holding no entry for it, marks as set on the way. Every rule and
// reference is read before the trace, so a rule it cannot run fails every trace, not only the ones reaching it.
// Pure.
import { chainNameHint, commentHint } from './hints.js';
import type { NftChainModel, NftHook, NftSetModel, NftTableModel } from './nft-rules.js';
import { type NftRule, type Selector, type Statement, type Verdict, chainTargets, parseNftRule, parseVerdict, setReferences } from './nft-syntax.js';
import {
  AFFINITY_NOTE,
  type Branch,
  LocalAddresses,
  type RawTrace,
  type ServiceHint,
  type ServiceKind,
  TraceInputError,
  type TraceRequest,
  inCidr,
  splitHostPort,
} from './types.js';
import { type World, finish, initialWorld, possible, stepped, withDnat } from './world.js';
import { parseIP } from '../../model/ip.js';

/** How a chain ended for one world: on to the next rule, back to the caller, or a verdict. */
type Outcome =
  | { readonly world: World; readonly end: 'next' | 'return' }
  | { readonly world: World; readonly end: 'accept' | 'drop' | 'reject' };

/** One value a selector gives the packet, with its share (numgen gives several). */
interface Keyed {
  readonly parts: readonly string[];
  readonly probability: number;
}

/** Maps whose elements name the kind of address they hold, for the Service a trace reports. */
const MAP_KINDS: Readonly<Record<string, ServiceKind | 'external'>> = {
  'service-nodeports': 'nodePort',
  'no-endpoint-nodeports': 'nodePort',
  'firewall-ips': 'loadBalancer',
};

export class NftInterpreter {
  private readonly rules = new Map<NftChainModel, readonly NftRule[]>();
  private readonly verdicts = new Map<string, Verdict>();
  /** Sets a rule adds to as packets pass (session affinity): read as holding no entry for a new client. */
  private readonly dynamic = new Set<string>();
  readonly notes: string[] = [];

  constructor(
    readonly table: NftTableModel,
    private readonly local: LocalAddresses,
    private readonly source: string,
  ) {
    this.validate();
  }

  private where(chain: string, i?: number): string {
    return `${this.source}: table ${this.table.family} ${this.table.name} chain ${chain}${i === undefined ? '' : ` rule ${i + 1}`}`;
  }

  /** Every rule parsed, every chain and set a rule or map element names present, every hook understood. */
  private validate(): void {
    for (const chain of this.table.chains.values()) {
      if (chain.base !== undefined && chain.base.type !== 'filter' && chain.base.type !== 'nat') {
        throw new TraceInputError(`${this.where(chain.name)}: base chain type ${chain.base.type} (hook ${chain.base.hook}) is not understood`);
      }
      const parsed = chain.rules.map((text, i) => parseNftRule(text, this.where(chain.name, i)));
      for (const rule of parsed) for (const st of rule.statements) if (st.k === 'update') this.dynamic.add(st.set);
      parsed.forEach((rule, i) => {
        for (const target of chainTargets(rule)) this.needChain(target, this.where(chain.name, i));
        for (const set of setReferences(rule)) this.needSet(set, this.where(chain.name, i));
      });
      this.rules.set(chain, parsed);
    }
    for (const set of this.table.sets.values()) {
      if (set.kind !== 'map') continue;
      for (const e of set.elements.values()) {
        const value = e.value ?? '';
        if (!/^(jump|goto|accept|drop|reject|return|continue)\b/.test(value)) continue;
        const v = this.verdictOf(value, `${this.source}: map ${set.name} element ${e.key}`);
        if (v.k === 'jump' || v.k === 'goto') this.needChain(v.chain, `${this.source}: map ${set.name} element ${e.key}`);
      }
    }
  }

  private needChain(name: string, where: string): NftChainModel {
    const c = this.table.chains.get(name);
    if (c === undefined) throw new TraceInputError(`${where}: no chain ${name}`);
    return c;
  }

  private needSet(name: string, where: string): NftSetModel {
    const s = this.table.sets.get(name);
    if (s === undefined) throw new TraceInputError(`${where}: no set ${name}`);
    return s;
  }

  private verdictOf(text: string, where: string): Verdict {
    let v = this.verdicts.get(text);
    if (v === undefined) {
      v = parseVerdict(text, where);
      this.verdicts.set(text, v);
    }
    return v;
  }

  /** Base chains of a hook, in priority order (their table order among equals, as nft). */
  baseChains(hook: NftHook): NftChainModel[] {
    return [...this.table.chains.values()].filter((c) => c.base?.hook === hook).sort((a, b) => a.base!.priority - b.base!.priority);
  }

  /**
   * Runs every base chain of `hook` for each world, in priority order: `on` are the worlds that went on,
   * `stopped` those dropped or rejected (by a rule or a policy).
   */
  runHook(hook: NftHook, worlds: readonly World[]): { on: World[]; stopped: Branch[] } {
    let on = [...worlds];
    const stopped: Branch[] = [];
    for (const chain of this.baseChains(hook)) {
      const next: World[] = [];
      for (const w of on) {
        for (const o of this.walk(chain, w, 0)) {
          if (o.end === 'drop' || o.end === 'reject') stopped.push(finish(o.world, o.end));
          else if ((o.end === 'return' || o.end === 'next') && chain.base!.policy === 'drop') {
            stopped.push(finish(stepped(o.world, `${this.label(chain)}: policy drop`), 'drop'));
          } else next.push(o.world);
        }
      }
      on = next;
    }
    return { on, stopped };
  }

  private label(chain: NftChainModel): string {
    return `${this.table.family} ${this.table.name} ${chain.name}`;
  }

  private walk(chain: NftChainModel, world: World, depth: number): Outcome[] {
    if (depth > 64) throw new TraceInputError(`${this.where(chain.name)}: jumps nest more than 64 deep (a loop?)`);
    const rules = this.rules.get(chain)!;
    const out: Outcome[] = [];
    let live: World[] = [world];
    for (let i = 0; i < rules.length && live.length > 0; i++) {
      const next: World[] = [];
      for (const w of live) {
        for (const o of this.runRule(chain, rules[i]!, w, depth, this.where(chain.name, i))) {
          if (o.end === 'next') next.push(o.world);
          else out.push(o);
        }
      }
      live = next;
    }
    for (const w of live) out.push({ world: w, end: 'return' });
    return out;
  }

  /** A verdict for a world: a chain walked (jump, goto), or an end. `before` is the world before the rule. */
  private follow(v: Verdict, w: World, depth: number, before: World): Outcome[] {
    switch (v.k) {
      case 'accept':
      case 'drop':
      case 'reject':
        return [{ world: w, end: v.k }];
      case 'return':
        return [{ world: w, end: 'return' }];
      case 'continue':
        return [{ world: w, end: 'next' }];
      case 'jump':
      case 'goto': {
        const target = this.table.chains.get(v.chain)!;
        const hint = chainNameHint(v.chain);
        const w2 = hint === undefined ? w : { ...w, hints: [...w.hints, hint] };
        return this.walk(target, w2, depth + 1).map((o) => {
          if (o.end !== 'return') return o;
          // A jump that came back with nothing matched decided nothing: its rule leaves the path.
          const world = o.world.path.length === w2.path.length ? { ...o.world, path: before.path, hints: before.hints } : o.world;
          return { world, end: v.k === 'jump' ? 'next' : 'return' };
        });
      }
    }
  }

  /** Runs one rule's statements left to right for a world, splitting it where a numgen does. */
  private runRule(chain: NftChainModel, rule: NftRule, world: World, depth: number, where: string): Outcome[] {
    const step = `${this.label(chain)}: ${rule.text}`;
    const out: Outcome[] = [];
    /** Runs statements from `i` on; `w` has matched everything before. */
    const run = (i: number, w: World): void => {
      if (i === 0) w = stepped(w, step);
      const s = rule.statements[i];
      if (s === undefined) {
        out.push({ world: w, end: 'next' });
        return;
      }
      switch (s.k) {
        case 'ct': {
          const values = s.key === 'state' ? ['new'] : w.dnat === undefined ? [] : ['dnat'];
          if (s.values.some((v) => values.includes(v)) !== s.negate) run(i + 1, w);
          else out.push({ world: unstep(w, world), end: 'next' });
          return;
        }
        case 'fib': {
          const local = this.local.has(s.which === 'saddr' ? w.packet.src : w.packet.dst);
          const types = s.types.map((t) => (t === 'local' ? local : t === 'unicast' ? !local : undefined));
          if (types.includes(undefined)) throw new TraceInputError(`${where}: fib type ${s.types.join(',')} is not understood`);
          if (types.includes(true) !== s.negate) run(i + 1, w);
          else out.push({ world: unstep(w, world), end: 'next' });
          return;
        }
        case 'mark-match':
          if (((w.mark & s.mask) >>> 0 === s.value) !== s.negate) run(i + 1, w);
          else out.push({ world: unstep(w, world), end: 'next' });
          return;
        case 'mark-set': {
          const m = s.op === '|' ? w.mark | s.value : s.op === '^' ? w.mark ^ s.value : s.op === '&' ? w.mark & s.value : s.value;
          run(i + 1, { ...w, mark: m >>> 0 });
          return;
        }
        case 'update':
          this.keys(s.expr, w, where);
          run(i + 1, w);
          return;
        case 'masquerade':
          out.push({ world: { ...w, masquerade: true }, end: 'accept' });
          return;
        case 'dnat-to': {
          const hp = splitHostPort(s.to);
          if (hp === undefined || hp.port === undefined) throw new TraceInputError(`${where}: dnat to "${s.to}" is not an address and port`);
          out.push({ world: withDnat(w, { ip: hp.ip, port: hp.port }), end: 'accept' });
          return;
        }
        case 'verdict':
          out.push(...this.follow(s.verdict, w, depth, world));
          return;
        case 'cmp':
        case 'lookup':
          for (const [share, matched] of this.test(s, w, where)) {
            const ws = share === w.probability ? w : { ...w, probability: share };
            if (matched) run(i + 1, ws);
            else out.push({ world: unstep(ws, world), end: 'next' });
          }
          return;
        case 'vmap':
        case 'dnat-map': {
          const elements = s.k === 'vmap' && s.set === undefined ? undefined : this.table.sets.get(s.k === 'vmap' ? s.set! : s.map)!;
          let missed = 0;
          for (const key of this.keys(s.expr, w, where)) {
            const share = w.probability * key.probability;
            if (!possible(share)) continue;
            const hit = elements === undefined ? (s.k === 'vmap' ? anonymous(s, key, where) : undefined) : lookup(s.expr, key, elements, where);
            if (hit === undefined) {
              missed += key.probability;
              continue;
            }
            const name = elements?.name;
            const wk: World = stepped({ ...w, probability: share }, `  ${name === undefined ? 'vmap' : `@${name}`} element ${hit.key}${hit.comment === undefined ? '' : ` comment "${hit.comment}"`} : ${hit.value}`, this.elementHint(name, hit, w));
            if (s.k === 'vmap') {
              out.push(...this.follow(this.verdictOf(hit.value, where), wk, depth, world));
            } else {
              const parts = hit.value.split(' . ');
              const ip = parseIP(parts[0] ?? '');
              const port = Number(parts[1]);
              if (ip === undefined || parts.length !== 2 || !Number.isInteger(port)) throw new TraceInputError(`${where}: map ${name ?? ''}: "${hit.value}" is not an address . port`);
              out.push({ world: withDnat(wk, { ip: ip.text, port }), end: 'accept' });
            }
          }
          // A key no element has: the expression breaks and the rule does not match (as in nft).
          if (possible(w.probability * missed)) out.push({ world: unstep({ ...w, probability: w.probability * missed }, world), end: 'next' });
          return;
        }
      }
    };
    run(0, world);
    return out;
  }

  private elementHint(map: string | undefined, e: { comment: string | undefined }, w: World): ServiceHint | undefined {
    if (map === undefined) return undefined;
    let kind: ServiceKind | 'external' | undefined = MAP_KINDS[map];
    if (map === 'no-endpoint-services') {
      const clusterIPs = this.table.sets.get('cluster-ips');
      kind = clusterIPs !== undefined && [...clusterIPs.elements.keys()].some((k) => k === w.packet.dst) ? 'clusterIP' : 'external';
    }
    if (e.comment === undefined) return kind === undefined ? undefined : { kind };
    return commentHint(e.comment, kind);
  }

  /** A condition's outcomes: `[probability, matched]`, one pair unless a numgen splits the world. */
  private test(s: Extract<Statement, { k: 'cmp' | 'lookup' }>, w: World, where: string): Array<[number, boolean]> {
    const keys = this.keys(s.expr, w, where);
    // A protocol-specific selector on another protocol gives no value: the rule does not match, negated or not.
    if (keys.length === 0) return [[w.probability, false]];
    let yes = 0;
    for (const key of keys) {
      let hit: boolean;
      if (s.k === 'lookup' && this.dynamic.has(s.set)) {
        hit = false;
        if (!this.notes.includes(AFFINITY_NOTE)) this.notes.push(AFFINITY_NOTE);
      } else if (s.k === 'lookup') hit = lookup(s.expr, key, this.table.sets.get(s.set)!, where) !== undefined;
      else hit = s.values.some((v) => valueMatches(s.expr[0]!, key.parts[0]!, v, where));
      if (hit !== s.negate) yes += key.probability;
    }
    const out: Array<[number, boolean]> = [];
    if (possible(w.probability * yes)) out.push([w.probability * yes, true]);
    if (possible(w.probability * (1 - yes))) out.push([w.probability * (1 - yes), false]);
    return out;
  }

  /** The packet's values for a concatenation (one per numgen value), each as its parts. */
  private keys(expr: readonly Selector[], w: World, where: string): Keyed[] {
    let keys: Keyed[] = [{ parts: [], probability: 1 }];
    for (const sel of expr) {
      const values = selectorValues(sel, w, where);
      const share = 1 / Math.max(values.length, 1);
      keys = keys.flatMap((k) => values.map((v) => ({ parts: [...k.parts, v], probability: sel.k === 'numgen' ? k.probability * share : k.probability })));
    }
    return keys;
  }
}

/**
 * A world whose rule stopped matching: the rule leaves its path (statements it ran before the failing match,
 * such as a mark, keep their effect, as in nft).
 */
function unstep(w: World, before: World): World {
  return { ...w, path: before.path, hints: before.hints };
}

function selectorValues(sel: Selector, w: World, where: string): string[] {
  const p = w.packet;
  switch (sel.k) {
    case 'addr': {
      const family = p.dst.includes(':') ? 'ip6' : 'ip';
      if (sel.family !== family) throw new TraceInputError(`${where}: ${sel.family} ${sel.which} on an ${family === 'ip' ? 'IPv4' : 'IPv6'} packet`);
      return [sel.which === 'saddr' ? p.src : p.dst];
    }
    case 'l4proto':
      return [p.proto];
    case 'nfproto':
      return [p.dst.includes(':') ? 'ipv6' : 'ipv4'];
    case 'port':
      if (sel.which === 'sport') throw new TraceInputError(`${where}: a source port match is not understood (a new connection's source port is not known)`);
      return sel.proto === undefined || sel.proto === p.proto ? [String(p.dport)] : [];
    case 'numgen':
      return Array.from({ length: sel.mod }, (_, i) => String(i + sel.offset));
    case 'mark':
      return [String(w.mark)];
  }
}

/** Whether a packet's value matches an element part or a literal: addresses by prefix or range, the rest exactly. */
function valueMatches(sel: Selector, value: string, literal: string, where: string): boolean {
  if (sel.k === 'addr') {
    const range = /^(\S+)-(\S+)$/.exec(literal);
    if (range !== null && !literal.includes('/')) return inRange(value, range[1]!, range[2]!);
    return (value.includes(':') === literal.includes(':')) && inCidr(value, literal, where);
  }
  const range = /^(\d+)-(\d+)$/.exec(literal);
  if (range !== null && /^\d+$/.test(value)) return Number(value) >= Number(range[1]) && Number(value) <= Number(range[2]);
  return value === literal || (/^\d+$/.test(value) && /^(0x[0-9a-f]+|\d+)$/.test(literal) && Number(value) === Number(literal));
}

function inRange(ip: string, lo: string, hi: string): boolean {
  const a = parseIP(lo);
  const b = parseIP(hi);
  const x = parseIP(ip);
  if (a === undefined || b === undefined || x === undefined || a.family !== x.family) return false;
  const pad = (t: string): string => (x.family === 'IPv4' ? t.split('.').map((o) => o.padStart(3, '0')).join('.') : t);
  return pad(x.text) >= pad(a.text) && pad(x.text) <= pad(b.text);
}

/** The element a key matches in a set or map, or undefined. */
function lookup(expr: readonly Selector[], key: Keyed, set: NftSetModel, where: string): { key: string; value: string; comment: string | undefined } | undefined {
  const exact = set.elements.get(key.parts.join(' . '));
  if (exact !== undefined) return { key: exact.key, value: exact.value ?? '', comment: exact.comment };
  for (const e of set.elements.values()) {
    const parts = e.key.split(' . ');
    if (parts.length !== expr.length) throw new TraceInputError(`${where}: element "${e.key}" of ${set.name} does not have ${expr.length} parts`);
    if (parts.every((p, i) => valueMatches(expr[i]!, key.parts[i]!, p, where))) return { key: e.key, value: e.value ?? '', comment: e.comment };
  }
  return undefined;
}

function anonymous(s: Extract<Statement, { k: 'vmap' }>, key: Keyed, where: string): { key: string; value: string; comment: undefined } | undefined {
  for (const [k, v] of s.entries) {
    const parts = k.split(' . ');
    if (parts.every((p, i) => valueMatches(s.expr[i]!, key.parts[i]!, p, where))) return { key: k, value: verdictText(v), comment: undefined };
  }
  return undefined;
}

function verdictText(v: Verdict): string {
  return v.k === 'jump' || v.k === 'goto' ? `${v.k} ${v.chain}` : v.k;
}

/**
 * The nftables backend's trace over one table: a local connection through the output hook's chains and
 * postrouting; one arriving from outside through prerouting, then input when its (translated) destination is a
 * node address, else forward and postrouting.
 */
export function traceNftables(table: NftTableModel, req: TraceRequest, source: string): RawTrace {
  const local = new LocalAddresses(req.localAddresses);
  const it = new NftInterpreter(table, local, source);
  const family = parseIP(req.packet.dst)?.family ?? 'IPv4';
  const done: Branch[] = [];
  const hook = (h: NftHook, ws: readonly World[]): World[] => {
    const { on, stopped } = it.runHook(h, ws);
    done.push(...stopped);
    return on;
  };
  let worlds: World[] = [initialWorld(req.packet)];
  if (req.entry === 'local') {
    worlds = hook('postrouting', hook('output', worlds));
  } else {
    worlds = hook('prerouting', worlds);
    const delivered = worlds.filter((w) => local.has(w.packet.dst));
    const forwarded = worlds.filter((w) => !local.has(w.packet.dst));
    worlds = [...hook('input', delivered), ...hook('postrouting', hook('forward', forwarded))];
  }
  for (const w of worlds) done.push(finish(w, 'accept'));
  return { family, branches: done, notes: it.notes };
}
