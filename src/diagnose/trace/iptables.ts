// The iptables interpreter: a new connection's first packet walked through an iptables ruleset (nat and filter
// tables, built-in chains in hook order, jumps, gotos, RETURN, policies), every `statistic` split followed with
// its probability. It reads the rules only: iptables-save of a node, or the restore input `compile` prints, give
// the same answers. Matches and targets are read as the kernel would for a new connection from a known source:
// conntrack state NEW (and DNAT once translated), an empty `recent` list (a client without affinity yet), ipset
// contents from the given sets, marks as set on the way. A rule it cannot read is an error in our chains
// (KUBE-*), and in anyone else's it is noted and taken as not matching. Pure.
import { commentHint } from './hints.js';
import { AFFINITY_NOTE } from './types.js';
import { type IptablesChain, IptablesRuleset, ruleWords } from './iptables-rules.js';
import type { Ipsets } from './ipsets.js';
import {
  type Branch,
  type Entry,
  type L4Protocol,
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

/** One condition of a rule: an option of a match module (or a core option such as -s), maybe negated. */
interface Condition {
  readonly module: string;
  readonly option: string;
  readonly negate: boolean;
  readonly args: readonly string[];
}

interface ParsedRule {
  readonly spec: string;
  readonly conditions: readonly Condition[];
  readonly target: string | undefined;
  /** `-g`: a jump that does not come back. */
  readonly goto: boolean;
  readonly targetArgs: ReadonlyMap<string, readonly string[]>;
  readonly comment: string | undefined;
}

/** How a walk through a chain ended for one world. */
type Outcome =
  | { readonly world: World; readonly end: 'next' | 'return' }
  | { readonly world: World; readonly end: 'stop'; readonly stop: 'ACCEPT' | 'DROP' | 'REJECT' | 'NAT'; readonly rule: string };

const CORE_OPTIONS: ReadonlyMap<string, string> = new Map([
  ['-s', '-s'],
  ['--source', '-s'],
  ['--src', '-s'],
  ['-d', '-d'],
  ['--destination', '-d'],
  ['--dst', '-d'],
  ['-p', '-p'],
  ['--protocol', '-p'],
  ['-i', '-i'],
  ['--in-interface', '-i'],
  ['-o', '-o'],
  ['--out-interface', '-o'],
  ['-f', '-f'],
  ['--fragment', '-f'],
]);

/** Targets that end the walk of a table for the packet (the rest go on to the next rule). */
const TERMINAL = new Set(['ACCEPT', 'DROP', 'REJECT', 'DNAT', 'SNAT', 'MASQUERADE', 'REDIRECT', 'RETURN', 'QUEUE', 'NFQUEUE']);
/** Targets that change nothing a trace follows. */
const INERT = new Set(['LOG', 'NFLOG', 'ULOG', 'TRACE', 'CT', 'NOTRACK', 'CONNMARK', 'CHECKSUM', 'TCPMSS', 'CLASSIFY', 'DSCP', 'TOS', 'TTL', 'HL', 'AUDIT', 'CONNSECMARK', 'SECMARK', 'IDLETIMER', 'LED', 'NETMAP']);

const PROTOCOL_NUMBERS: Readonly<Record<string, L4Protocol>> = { '6': 'tcp', '17': 'udp', '132': 'sctp' };

/** Reads one rule spec into conditions and a target; throws on what is not iptables syntax. */
export function parseIptablesRule(spec: string, where: string): ParsedRule {
  const w = ruleWords(spec);
  const conditions: Condition[] = [];
  const targetArgs = new Map<string, string[]>();
  let module = '';
  let target: string | undefined;
  let goto = false;
  let negate = false;
  let comment: string | undefined;
  const argsFrom = (i: number): string[] => {
    const out: string[] = [];
    while (i < w.length && w[i] !== '!' && !w[i]!.startsWith('-')) out.push(w[i++]!);
    return out;
  };
  for (let i = 0; i < w.length; ) {
    const word = w[i]!;
    if (word === '!') {
      negate = true;
      i++;
      continue;
    }
    if (word === '-m' || word === '--match') {
      module = w[i + 1] ?? '';
      if (module === '') throw new TraceInputError(`${where}: -m without a module`);
      conditions.push({ module, option: '-m', negate: false, args: [] });
      i += 2;
      continue;
    }
    if (word === '-j' || word === '--jump' || word === '-g' || word === '--goto') {
      target = w[i + 1];
      goto = word === '-g' || word === '--goto';
      if (target === undefined) throw new TraceInputError(`${where}: ${word} without a target`);
      module = `target:${target}`;
      i += 2;
      continue;
    }
    if (word === '-c') {
      i += 3;
      continue;
    }
    const core = CORE_OPTIONS.get(word);
    if (core !== undefined) {
      const args = core === '-f' ? [] : [w[i + 1] ?? ''];
      if (core === '-p') module = args[0]!;
      conditions.push({ module: '', option: core, negate, args });
      negate = false;
      i += 1 + args.length;
      continue;
    }
    if (word.startsWith('--')) {
      const args = argsFrom(i + 1);
      if (module.startsWith('target:')) targetArgs.set(word, args);
      else if (word === '--comment') comment = args[0] ?? '';
      else conditions.push({ module, option: word, negate, args });
      negate = false;
      i += 1 + args.length;
      continue;
    }
    throw new TraceInputError(`${where}: "${word}" is not understood in rule "${spec}"`);
  }
  return { spec, conditions, target, goto, targetArgs, comment };
}

/** The states conntrack gives the packet: a new connection, translated or not. */
function ctStates(w: World): Set<string> {
  const s = new Set(['NEW']);
  if (w.dnat !== undefined) s.add('DNAT');
  return s;
}

function portIn(port: number, spec: string): boolean {
  return spec.split(',').some((part) => {
    const [lo, hi] = part.split(':');
    const a = Number(lo === '' ? 0 : lo);
    const b = hi === undefined ? a : Number(hi === '' ? 65535 : hi);
    return port >= a && port <= b;
  });
}

/** `value[/mask]` of a mark match or target, as numbers. */
function markValue(text: string, where: string): { value: number; mask: number } {
  const [v, m] = text.split('/');
  const value = Number(v);
  const mask = m === undefined ? 0xffffffff : Number(m);
  if (!Number.isFinite(value) || !Number.isFinite(mask)) throw new TraceInputError(`${where}: "${text}" is not a mark`);
  return { value: value >>> 0, mask: mask >>> 0 };
}

export interface IptablesInterpreterOptions {
  readonly ipsets?: Ipsets | undefined;
  /** Where the rules came from, for messages (`iptables-save`, `compile`). */
  readonly source: string;
}

/**
 * Walks worlds through tables and chains. `runHook` runs one table's built-in chain for each world and reports
 * which went on (with their packet as translated) and which were stopped; the backend drivers (traceIptables
 * below, ipvs.ts) put hooks in the kernel's order.
 */
export class IptablesInterpreter {
  private readonly parsed = new Map<string, ParsedRule>();
  readonly notes: string[] = [];
  private readonly noted = new Set<string>();
  private readonly ipsets: Ipsets | undefined;

  constructor(
    readonly rules: IptablesRuleset,
    private readonly local: LocalAddresses,
    opts: IptablesInterpreterOptions,
  ) {
    this.ipsets = opts.ipsets;
    this.source = opts.source;
    this.validate();
  }

  private readonly source: string;

  /** Our chains are read whole first: a rule we write but cannot read fails every trace, not only the ones reaching it. */
  private validate(): void {
    for (const [table, chains] of this.rules.tables) {
      for (const chain of chains.values()) {
        if (!strict(chain)) continue;
        chain.rules.forEach((spec, i) => {
          const where = this.where(table, chain.name, i);
          // Parsed, not kept: at 10,000 Services these are 100,000 rules, and a trace walks a few of them.
          const rule = parseIptablesRule(spec, where);
          for (const c of rule.conditions) if (!KNOWN.has(`${c.module === '' ? '' : moduleOf(c.module)}|${c.option}`)) throw new TraceInputError(`${where}: ${describe(c)} is not understood in "${spec}"`);
          if (rule.target !== undefined && !TERMINAL.has(rule.target) && !INERT.has(rule.target) && rule.target !== 'MARK' && !chains.has(rule.target)) {
            throw new TraceInputError(`${where}: ${rule.goto ? '-g' : '-j'} ${rule.target}: no such chain in table ${table}`);
          }
          const a = rule.targetArgs;
          if (rule.target === 'DNAT' && !a.has('--to-destination') && !a.has('--to')) throw new TraceInputError(`${where}: DNAT without --to-destination in "${spec}"`);
          if (rule.target === 'MARK' && !['--set-xmark', '--set-mark', '--or-mark', '--xor-mark', '--and-mark'].some((k) => a.has(k))) {
            throw new TraceInputError(`${where}: MARK without a mark in "${spec}"`);
          }
        });
      }
    }
  }

  private where(table: string, chain: string, i: number): string {
    return `${this.source}: ${table} ${chain} rule ${i + 1}`;
  }

  private note(text: string): void {
    if (this.noted.has(text)) return;
    this.noted.add(text);
    this.notes.push(text);
  }

  private parse(spec: string, where: string): ParsedRule {
    let r = this.parsed.get(spec);
    if (r === undefined) {
      r = parseIptablesRule(spec, where);
      this.parsed.set(spec, r);
    }
    return r;
  }

  /**
   * Runs `table`'s built-in `chain` for each world: `on` are the worlds that went on (accepted, translated or
   * past the end under an ACCEPT policy), `stopped` those a rule or policy dropped or rejected.
   */
  runHook(table: string, chain: string, worlds: readonly World[]): { on: World[]; stopped: Branch[] } {
    const on: World[] = [];
    const stopped: Branch[] = [];
    const c = this.rules.chain(table, chain);
    if (c === undefined) return { on: [...worlds], stopped };
    for (const w of worlds) {
      for (const o of this.walk(table, c, w, 0)) {
        if (o.end !== 'stop') {
          if (c.policy === 'DROP') stopped.push(finish(stepped(o.world, `${table} ${chain}: policy DROP`), 'drop'));
          else on.push(o.world);
        } else if (o.stop === 'DROP' || o.stop === 'REJECT') stopped.push(finish(o.world, o.stop === 'DROP' ? 'drop' : 'reject'));
        else on.push(o.stop === 'ACCEPT' && table === 'filter' ? { ...o.world, acceptedBy: o.rule } : o.world);
      }
    }
    return { on, stopped };
  }

  private walk(table: string, chain: IptablesChain, world: World, depth: number): Outcome[] {
    if (depth > 64) throw new TraceInputError(`${this.source}: ${table} ${chain.name}: jumps nest more than 64 deep (a loop?)`);
    const out: Outcome[] = [];
    let live: World[] = [world];
    for (let i = 0; i < chain.rules.length && live.length > 0; i++) {
      const spec = chain.rules[i]!;
      const where = this.where(table, chain.name, i);
      const rule = this.parse(spec, where);
      const next: World[] = [];
      for (const w of live) {
        for (const [w2, matched] of this.match(rule, w, table, chain, where)) {
          if (!matched) {
            next.push(w2);
            continue;
          }
          for (const o of this.apply(rule, w2, table, chain, depth, where)) {
            if (o.end === 'next') next.push(o.world);
            else out.push(o);
          }
        }
      }
      live = next;
    }
    for (const w of live) out.push({ world: w, end: 'return' });
    return out;
  }

  /** The rule's target, for a world that matched it. */
  private apply(rule: ParsedRule, w0: World, table: string, chain: IptablesChain, depth: number, where: string): Outcome[] {
    const step = `${table} ${chain.name}: ${rule.spec}`;
    const w = stepped(w0, step, this.hint(rule, chain.name));
    const t = rule.target;
    if (t === undefined) return [{ world: w0, end: 'next' }];
    const sub = this.rules.chain(table, t);
    if (sub !== undefined && !sub.builtin) {
      return this.walk(table, sub, w, depth + 1).map((o) => {
        if (o.end !== 'return') return o;
        // A jump that came back with nothing matched decided nothing: it leaves the path.
        const world = o.world.path.length === w.path.length ? { ...o.world, path: w0.path, hints: w0.hints } : o.world;
        return { world, end: rule.goto ? 'return' : 'next' };
      });
    }
    switch (t) {
      case 'ACCEPT':
      case 'DROP':
      case 'REJECT':
        return [{ world: w, end: 'stop', stop: t, rule: step }];
      case 'RETURN':
        return [{ world: w, end: 'return' }];
      case 'DNAT': {
        const to = rule.targetArgs.get('--to-destination')?.[0] ?? rule.targetArgs.get('--to')?.[0];
        const hp = to === undefined ? undefined : splitHostPort(to);
        if (hp === undefined) throw new TraceInputError(`${where}: DNAT without a readable --to-destination: "${rule.spec}"`);
        return [{ world: withDnat(w, { ip: hp.ip, port: hp.port ?? w.packet.dport }), end: 'stop', stop: 'NAT', rule: step }];
      }
      case 'MASQUERADE':
      case 'SNAT':
        return [{ world: { ...w, masquerade: true }, end: 'stop', stop: 'NAT', rule: step }];
      case 'REDIRECT': {
        this.note(`${where}: REDIRECT sends the packet to a local port; the trace takes it as delivered on this node`);
        const port = Number(rule.targetArgs.get('--to-ports')?.[0] ?? w.packet.dport);
        return [{ world: withDnat(w, { ip: w.packet.src.includes(':') ? '::1' : '127.0.0.1', port }), end: 'stop', stop: 'NAT', rule: step }];
      }
      case 'MARK':
        return [{ world: { ...w, mark: this.mark(rule, w.mark, where) }, end: 'next' }];
      case 'QUEUE':
      case 'NFQUEUE':
        this.note(`${where}: ${t} hands the packet to a program; the trace takes it as accepted`);
        return [{ world: w, end: 'stop', stop: 'ACCEPT', rule: step }];
      default:
        if (INERT.has(t)) return [{ world: w0, end: 'next' }];
        if (strict(chain)) throw new TraceInputError(`${where}: target ${t} is not understood`);
        this.note(`${where}: target ${t} is not understood; the trace goes on past it`);
        return [{ world: w0, end: 'next' }];
    }
  }

  private mark(rule: ParsedRule, mark: number, where: string): number {
    const a = rule.targetArgs;
    const arg = (k: string): number | undefined => {
      const v = a.get(k)?.[0];
      return v === undefined ? undefined : markValue(v, where).value;
    };
    if (a.has('--set-xmark') || a.has('--set-mark')) {
      const { value, mask } = markValue((a.get('--set-xmark') ?? a.get('--set-mark'))![0] ?? '', where);
      return a.has('--set-xmark') ? ((mark & ~mask) ^ value) >>> 0 : ((mark & ~mask) | value) >>> 0;
    }
    const or = arg('--or-mark');
    if (or !== undefined) return (mark | or) >>> 0;
    const xor = arg('--xor-mark');
    if (xor !== undefined) return (mark ^ xor) >>> 0;
    const and = arg('--and-mark');
    if (and !== undefined) return (mark & and) >>> 0;
    throw new TraceInputError(`${where}: MARK without a mark: "${rule.spec}"`);
  }

  private hint(rule: ParsedRule, chain: string): ServiceHint | undefined {
    if (rule.comment === undefined) return undefined;
    let kind: ServiceKind | 'external' | undefined;
    if (chain === 'KUBE-NODEPORTS') kind = 'nodePort';
    else if (/ has no (local )?endpoints$/.test(rule.comment)) {
      if (chain === 'KUBE-SERVICES') kind = 'clusterIP';
      else if (rule.conditions.some((c) => c.option === '--dst-type')) kind = 'nodePort';
      else kind = 'external';
    }
    return commentHint(rule.comment, kind);
  }

  /**
   * Whether `w` matches the rule: `[world, matched]` pairs, one world unless a `statistic` match splits it.
   * An unreadable condition outside our chains makes the rule not match (noted).
   */
  private match(rule: ParsedRule, w: World, table: string, chain: IptablesChain, where: string): Array<[World, boolean]> {
    let probability: number | undefined;
    let unknown: Condition | undefined;
    for (const c of rule.conditions) {
      if (c.option === '-m') continue;
      if (moduleOf(c.module) === 'statistic' && c.option === '--probability') {
        const p = Number(c.args[0]);
        if (!(p >= 0 && p <= 1)) throw new TraceInputError(`${where}: --probability "${c.args[0] ?? ''}"`);
        probability = c.negate ? 1 - p : p;
        continue;
      }
      const r = this.condition(c, w, where);
      if (r === false) return [[w, false]];
      if (r === undefined) unknown ??= c;
    }
    if (unknown !== undefined) {
      if (strict(chain)) throw new TraceInputError(`${where}: ${describe(unknown)} is not understood in "${rule.spec}"`);
      this.note(`${table} ${chain.name}: "${rule.spec}": ${describe(unknown)} is not understood; taken as not matching`);
      return [[w, false]];
    }
    if (probability === undefined) return [[w, true]];
    const out: Array<[World, boolean]> = [];
    if (possible(w.probability * probability)) out.push([{ ...w, probability: w.probability * probability }, true]);
    if (possible(w.probability * (1 - probability))) out.push([{ ...w, probability: w.probability * (1 - probability) }, false]);
    return out;
  }

  /** One condition: true, false, or undefined when it cannot be read for this packet. */
  private condition(c: Condition, w: World, where: string): boolean | undefined {
    const p = w.packet;
    const neg = (b: boolean | undefined): boolean | undefined => (b === undefined ? undefined : b !== c.negate);
    const arg = c.args[0] ?? '';
    switch (`${moduleOf(c.module)}|${c.option}`) {
      case '|-s':
        return neg(arg.split(',').some((a) => sameFamily(p.src, a) && inCidr(p.src, a, where)));
      case '|-d':
        return neg(arg.split(',').some((a) => sameFamily(p.dst, a) && inCidr(p.dst, a, where)));
      case '|-p': {
        const proto = PROTOCOL_NUMBERS[arg] ?? arg.toLowerCase();
        return neg(proto === 'all' || proto === '0' || proto === p.proto);
      }
      case '|-i':
      case '|-o':
      case '|-f':
        return undefined;
      case 'tcp|--dport':
      case 'udp|--dport':
      case 'sctp|--dport':
      case 'tcp|--destination-port':
      case 'udp|--destination-port':
      case 'sctp|--destination-port':
        return neg(moduleOf(c.module) === p.proto && portIn(p.dport, arg));
      case 'tcp|--syn':
        return neg(p.proto === 'tcp');
      case 'multiport|--dports':
      case 'multiport|--destination-ports':
        return neg(portIn(p.dport, arg));
      case 'addrtype|--dst-type':
      case 'addrtype|--src-type': {
        const ip = c.option === '--dst-type' ? p.dst : p.src;
        const types = arg.split(',');
        if (types.some((t) => t !== 'LOCAL' && t !== 'UNICAST')) return undefined;
        const local = this.local.has(ip);
        return neg(types.some((t) => (t === 'LOCAL' ? local : !local)));
      }
      case 'addrtype|--limit-iface-in':
      case 'addrtype|--limit-iface-out':
        return true;
      case 'conntrack|--ctstate':
      case 'state|--state': {
        const states = ctStates(w);
        return neg(arg.split(',').some((s) => states.has(s)));
      }
      case 'conntrack|--ctorigdst':
        return neg(inCidr(w.original.dst, arg, where));
      case 'conntrack|--ctorigdstport':
        return neg(portIn(w.original.dport, arg));
      case 'conntrack|--ctorigsrc':
        return neg(inCidr(w.original.src, arg, where));
      case 'mark|--mark': {
        const { value, mask } = markValue(arg, where);
        return neg((w.mark & mask) >>> 0 === value);
      }
      case 'recent|--rcheck':
      case 'recent|--update':
        // A client new to the Service: nothing in the list yet.
        this.note(AFFINITY_NOTE);
        return neg(false);
      case 'recent|--set':
      case 'recent|--remove':
        return neg(true);
      case 'recent|--name':
      case 'recent|--seconds':
      case 'recent|--reap':
      case 'recent|--rsource':
      case 'recent|--rdest':
      case 'recent|--mask':
      case 'recent|--hitcount':
      case 'recent|--rttl':
      case 'statistic|--mode':
      case 'set|--return-nomatch':
      case 'set|--update-counters':
      case 'set|--update-subcounters':
      case 'ipvs|--vdir':
      case 'ipvs|--vmethod':
        return true;
      case 'set|--match-set': {
        if (this.ipsets === undefined) return undefined;
        return neg(this.ipsets.matches(arg, c.args[1] ?? '', p, where));
      }
      case 'physdev|--physdev-is-in':
      case 'physdev|--physdev-is-out':
      case 'physdev|--physdev-is-bridged':
        // Routed, not bridged: pods and the node's own sockets, as the lab and a point-to-point CNI.
        return neg(false);
      case 'ipvs|--ipvs':
        return neg(w.ipvs !== undefined);
      case 'ipvs|--vaddr':
        return neg(w.ipvs !== undefined && inCidr(w.ipvs.vaddr, arg, where));
      case 'ipvs|--vport':
        return neg(w.ipvs !== undefined && w.ipvs.vport === Number(arg));
      case 'ipvs|--vproto':
        return neg(w.ipvs !== undefined && (PROTOCOL_NUMBERS[arg] ?? arg.toLowerCase()) === w.ipvs.vproto);
      default:
        return undefined;
    }
  }
}

/** Our chains must be read whole; anyone else's may hold what we do not read. */
function strict(chain: IptablesChain): boolean {
  return chain.name.startsWith('KUBE-');
}

/** `-p tcp` loads the tcp match under its name; `-m tcp` too. */
function moduleOf(module: string): string {
  return module === '6' ? 'tcp' : module === '17' ? 'udp' : module === '132' ? 'sctp' : module;
}

const KNOWN = new Set([
  '|-s', '|-d', '|-p',
  ...['tcp', 'udp', 'sctp'].flatMap((m) => [`${m}|-m`, `${m}|--dport`, `${m}|--destination-port`]),
  'tcp|--syn', 'multiport|-m', 'multiport|--dports', 'multiport|--destination-ports',
  'addrtype|-m', 'addrtype|--dst-type', 'addrtype|--src-type', 'addrtype|--limit-iface-in', 'addrtype|--limit-iface-out',
  'conntrack|-m', 'conntrack|--ctstate', 'conntrack|--ctorigdst', 'conntrack|--ctorigdstport', 'conntrack|--ctorigsrc', 'state|-m', 'state|--state',
  'mark|-m', 'mark|--mark', 'comment|-m',
  'recent|-m', 'recent|--rcheck', 'recent|--update', 'recent|--set', 'recent|--remove', 'recent|--name', 'recent|--seconds', 'recent|--reap',
  'recent|--rsource', 'recent|--rdest', 'recent|--mask', 'recent|--hitcount', 'recent|--rttl',
  'statistic|-m', 'statistic|--mode', 'statistic|--probability',
  'set|-m', 'set|--match-set', 'set|--return-nomatch', 'set|--update-counters', 'set|--update-subcounters',
  'physdev|-m', 'physdev|--physdev-is-in', 'physdev|--physdev-is-out', 'physdev|--physdev-is-bridged',
  'ipvs|-m', 'ipvs|--ipvs', 'ipvs|--vaddr', 'ipvs|--vport', 'ipvs|--vproto', 'ipvs|--vdir', 'ipvs|--vmethod',
]);

function describe(c: Condition): string {
  const text = c.option === '-m' ? `-m ${c.module}` : `${c.negate ? '! ' : ''}${c.option}${c.args.length > 0 ? ` ${c.args.join(' ')}` : ''}`;
  return c.module !== '' && c.option !== '-m' ? `${text} (-m ${c.module})` : text;
}

/** A rule for another family's addresses never matches (ip6tables has no IPv4 rules, but a mixed input may). */
function sameFamily(ip: string, cidr: string): boolean {
  return ip.includes(':') === cidr.includes(':');
}

export interface IptablesTraceOptions {
  readonly ipsets?: Ipsets | undefined;
  readonly source: string;
}

/**
 * The iptables backend's trace: a local connection goes through nat OUTPUT, filter OUTPUT and nat POSTROUTING;
 * one arriving from outside through nat PREROUTING, then filter INPUT when its (translated) destination is a
 * node address, else filter FORWARD and nat POSTROUTING.
 */
export function traceIptables(rules: IptablesRuleset, req: TraceRequest, opts: IptablesTraceOptions): RawTrace {
  const local = new LocalAddresses(req.localAddresses);
  const it = new IptablesInterpreter(rules, local, opts);
  const family = parseIP(req.packet.dst)?.family ?? 'IPv4';
  const done: Branch[] = [];
  let worlds: World[] = [initialWorld(req.packet)];
  const hook = (table: string, chain: string, ws: readonly World[]): World[] => {
    const { on, stopped } = it.runHook(table, chain, ws);
    done.push(...stopped);
    return on;
  };
  worlds = hook('nat', entryChain(req.entry), worlds);
  if (req.entry === 'local') {
    worlds = hook('filter', 'OUTPUT', worlds);
    worlds = hook('nat', 'POSTROUTING', worlds);
  } else {
    const delivered = worlds.filter((w) => local.has(w.packet.dst));
    const forwarded = worlds.filter((w) => !local.has(w.packet.dst));
    worlds = [...hook('filter', 'INPUT', delivered), ...hook('nat', 'POSTROUTING', hook('filter', 'FORWARD', forwarded))];
  }
  for (const w of worlds) done.push(finish(w, 'accept'));
  return { family, branches: done, notes: it.notes };
}

function entryChain(entry: Entry): string {
  return entry === 'local' ? 'OUTPUT' : 'PREROUTING';
}

/** A ruleset from one restore payload or save dump; see IptablesRuleset.apply. */
export function iptablesRulesetOf(text: string, source: string): IptablesRuleset {
  return new IptablesRuleset().apply(text, source);
}
