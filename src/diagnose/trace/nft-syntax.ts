// nft rule text read into statements, in both forms nft speaks: what the nftables backend writes (`nft -f`
// input) and what `nft list` prints back (`dnat ip to …`, marks as 0x00004000, `{ a, b }`). Only the
// expressions the interpreter can run are read; anything else is an error naming the rule and the words.
// Pure.
import { TraceInputError } from './types.js';

export type Selector =
  | { readonly k: 'addr'; readonly family: 'ip' | 'ip6'; readonly which: 'saddr' | 'daddr' }
  | { readonly k: 'l4proto' }
  | { readonly k: 'port'; readonly which: 'dport' | 'sport'; readonly proto: 'tcp' | 'udp' | 'sctp' | undefined }
  | { readonly k: 'numgen'; readonly mod: number; readonly offset: number }
  | { readonly k: 'mark' }
  | { readonly k: 'nfproto' };

export type Verdict =
  | { readonly k: 'accept' | 'drop' | 'reject' | 'return' | 'continue' }
  | { readonly k: 'jump' | 'goto'; readonly chain: string };

export type Statement =
  | { readonly k: 'ct'; readonly key: 'state' | 'status'; readonly negate: boolean; readonly values: readonly string[] }
  | { readonly k: 'fib'; readonly which: 'saddr' | 'daddr'; readonly negate: boolean; readonly types: readonly string[] }
  | { readonly k: 'mark-match'; readonly mask: number; readonly negate: boolean; readonly value: number }
  | { readonly k: 'cmp'; readonly expr: readonly Selector[]; readonly negate: boolean; readonly values: readonly string[] }
  | { readonly k: 'lookup'; readonly expr: readonly Selector[]; readonly negate: boolean; readonly set: string }
  | { readonly k: 'vmap'; readonly expr: readonly Selector[]; readonly set: string | undefined; readonly entries: ReadonlyArray<readonly [string, Verdict]> }
  | { readonly k: 'mark-set'; readonly op: '|' | '^' | '&' | '='; readonly value: number }
  | { readonly k: 'update'; readonly set: string; readonly expr: readonly Selector[] }
  | { readonly k: 'dnat-to'; readonly to: string }
  | { readonly k: 'dnat-map'; readonly expr: readonly Selector[]; readonly map: string }
  | { readonly k: 'masquerade' }
  | { readonly k: 'verdict'; readonly verdict: Verdict };

export interface NftRule {
  readonly text: string;
  readonly statements: readonly Statement[];
  readonly comment: string | undefined;
}

/** Words of a rule: quoted strings whole, `{` `}` `,` on their own. */
function tokens(text: string): string[] {
  const out: string[] = [];
  const re = /"[^"]*"|[{},]|[^\s{},]+/g;
  for (const m of text.matchAll(re)) out.push(m[0]);
  return out;
}

class Reader {
  private pos = 0;
  constructor(
    private readonly words: readonly string[],
    private readonly rule: string,
    private readonly where: string,
  ) {}

  get done(): boolean {
    return this.pos >= this.words.length;
  }

  peek(n = 0): string | undefined {
    return this.words[this.pos + n];
  }

  next(): string {
    const w = this.words[this.pos++];
    if (w === undefined) this.fail('the rule ends too early');
    return w;
  }

  /** Consumes `word` if it is next. */
  take(word: string): boolean {
    if (this.words[this.pos] !== word) return false;
    this.pos++;
    return true;
  }

  expect(word: string): void {
    if (!this.take(word)) this.fail(`"${word}" expected`);
  }

  fail(what: string): never {
    throw new TraceInputError(`${this.where}: ${what} at "${this.words.slice(this.pos).join(' ')}" in rule "${this.rule}"`);
  }

  /** `{ a , b }` (either comma style) or one word. */
  list(): string[] {
    if (!this.take('{')) return [this.next()];
    const out: string[] = [];
    let cur: string[] = [];
    for (;;) {
      const w = this.next();
      if (w === '}' || w === ',') {
        if (cur.length > 0) out.push(cur.join(' '));
        cur = [];
        if (w === '}') return out;
      } else cur.push(w);
    }
  }
}

function num(text: string, r: Reader): number {
  const n = Number(text);
  if (!Number.isInteger(n)) r.fail(`"${text}" is not a number`);
  return n >>> 0;
}

function selector(r: Reader): Selector | undefined {
  const w = r.peek();
  const w1 = r.peek(1);
  if ((w === 'ip' || w === 'ip6') && (w1 === 'saddr' || w1 === 'daddr')) {
    r.next();
    r.next();
    return { k: 'addr', family: w, which: w1 };
  }
  if (w === 'meta' && w1 === 'l4proto') {
    r.next();
    r.next();
    return { k: 'l4proto' };
  }
  if (w === 'meta' && w1 === 'nfproto') {
    r.next();
    r.next();
    return { k: 'nfproto' };
  }
  if ((w === 'th' || w === 'tcp' || w === 'udp' || w === 'sctp') && (w1 === 'dport' || w1 === 'sport')) {
    r.next();
    r.next();
    return { k: 'port', which: w1, proto: w === 'th' ? undefined : w };
  }
  if (w === 'numgen') {
    r.next();
    r.expect('random');
    r.expect('mod');
    const mod = num(r.next(), r);
    const offset = r.take('offset') ? num(r.next(), r) : 0;
    if (mod === 0) r.fail('numgen mod 0');
    return { k: 'numgen', mod, offset };
  }
  return undefined;
}

/** `a . b . c`: at least one selector. */
function concat(r: Reader): Selector[] | undefined {
  const first = selector(r);
  if (first === undefined) return undefined;
  const out = [first];
  while (r.take('.')) out.push(selector(r) ?? r.fail('a selector expected after "."'));
  return out;
}

function verdict(r: Reader): Verdict | undefined {
  const w = r.peek();
  switch (w) {
    case 'accept':
    case 'drop':
    case 'return':
    case 'continue':
      r.next();
      return { k: w };
    case 'reject':
      r.next();
      // `reject with icmp port-unreachable` and the like: how, not whether.
      if (r.take('with')) while (!r.done && r.peek() !== 'comment') r.next();
      return { k: 'reject' };
    case 'jump':
    case 'goto':
      r.next();
      return { k: w, chain: r.next() };
    default:
      return undefined;
  }
}

/** Reads a verdict from a vmap element's value (`goto lb-tcp-1`). */
export function parseVerdict(text: string, where: string): Verdict {
  const r = new Reader(tokens(text), text, where);
  const v = verdict(r) ?? r.fail('not a verdict');
  if (!r.done) r.fail('words after a verdict');
  return v;
}

/** Parses one rule; throws TraceInputError on anything it cannot run. */
export function parseNftRule(text: string, where: string): NftRule {
  const r = new Reader(tokens(text), text, where);
  const statements: Statement[] = [];
  let comment: string | undefined;
  while (!r.done) {
    if (r.take('comment')) {
      const c = r.next();
      if (!c.startsWith('"')) r.fail('a quoted comment expected');
      comment = c.slice(1, -1);
      if (!r.done) r.fail('words after the comment');
      break;
    }
    const v = verdict(r);
    if (v !== undefined) {
      statements.push({ k: 'verdict', verdict: v });
      if (!r.done && r.peek() !== 'comment') r.fail('words after a verdict');
      continue;
    }
    const w = r.peek();
    if (w === 'ct' && (r.peek(1) === 'state' || r.peek(1) === 'status')) {
      r.next();
      const key = r.next() as 'state' | 'status';
      const negate = r.take('!=');
      statements.push({ k: 'ct', key, negate, values: r.list() });
      continue;
    }
    if (w === 'fib') {
      r.next();
      const which = r.next();
      if (which !== 'saddr' && which !== 'daddr') return r.fail('fib saddr or daddr expected');
      r.expect('type');
      const negate = r.take('!=');
      statements.push({ k: 'fib', which, negate, types: r.list() });
      continue;
    }
    if (w === 'meta' && r.peek(1) === 'mark') {
      r.next();
      r.next();
      if (r.take('set')) {
        if (r.take('meta')) {
          r.expect('mark');
          const op = r.next();
          if (op !== '|' && op !== '^' && op !== '&') return r.fail('|, ^ or & expected');
          statements.push({ k: 'mark-set', op, value: num(r.next(), r) });
        } else statements.push({ k: 'mark-set', op: '=', value: num(r.next(), r) });
        continue;
      }
      let mask = 0xffffffff;
      if (r.take('&')) mask = num(r.next(), r);
      const negate = r.take('!=');
      if (!negate) r.take('==');
      statements.push({ k: 'mark-match', mask, negate, value: num(r.next(), r) });
      continue;
    }
    if (w === 'update' || w === 'add') {
      r.next();
      const set = r.next();
      if (!set.startsWith('@')) r.fail('a set expected');
      r.expect('{');
      const expr = concat(r) ?? r.fail('a selector expected');
      r.expect('}');
      statements.push({ k: 'update', set: set.slice(1), expr });
      continue;
    }
    if (w === 'dnat') {
      r.next();
      if (r.peek() === 'ip' || r.peek() === 'ip6') {
        if (r.peek(1) === 'to') r.next();
      }
      r.expect('to');
      const expr = concat(r);
      if (expr === undefined) {
        statements.push({ k: 'dnat-to', to: r.next() });
      } else {
        r.expect('map');
        const map = r.next();
        if (!map.startsWith('@')) r.fail('a named map expected');
        statements.push({ k: 'dnat-map', expr, map: map.slice(1) });
      }
      continue;
    }
    if (w === 'masquerade') {
      r.next();
      while (r.peek() === 'fully-random' || r.peek() === 'random' || r.peek() === 'persistent' || r.peek() === ',') r.next();
      statements.push({ k: 'masquerade' });
      continue;
    }
    const expr = concat(r) ?? r.fail('not understood');
    if (r.take('vmap')) {
      if (r.peek()?.startsWith('@') === true) {
        statements.push({ k: 'vmap', expr, set: r.next().slice(1), entries: [] });
      } else {
        const entries = r.list().map((e): [string, Verdict] => {
          const sep = e.indexOf(' : ');
          if (sep < 0) r.fail(`"${e}" is not a vmap entry`);
          return [e.slice(0, sep), parseVerdict(e.slice(sep + 3), where)];
        });
        statements.push({ k: 'vmap', expr, set: undefined, entries });
      }
      continue;
    }
    const negate = r.take('!=');
    if (!negate) r.take('==');
    if (r.peek()?.startsWith('@') === true) {
      statements.push({ k: 'lookup', expr, negate, set: r.next().slice(1) });
      continue;
    }
    if (expr.length !== 1) r.fail('a concatenation outside a lookup');
    const values = r.list();
    if (values.length === 0) r.fail('no value');
    statements.push({ k: 'cmp', expr, negate, values });
  }
  return { text, statements, comment };
}

/** Chains a rule sends packets to (jump, goto, in anonymous vmaps too). */
export function chainTargets(rule: NftRule): string[] {
  const out: string[] = [];
  const add = (v: Verdict): void => {
    if (v.k === 'jump' || v.k === 'goto') out.push(v.chain);
  };
  for (const s of rule.statements) {
    if (s.k === 'verdict') add(s.verdict);
    else if (s.k === 'vmap') for (const [, v] of s.entries) add(v);
  }
  return out;
}

/** Named sets and maps a rule reads or writes. */
export function setReferences(rule: NftRule): string[] {
  const out: string[] = [];
  for (const s of rule.statements) {
    if (s.k === 'lookup' || s.k === 'update') out.push(s.set);
    else if (s.k === 'vmap' && s.set !== undefined) out.push(s.set);
    else if (s.k === 'dnat-map') out.push(s.map);
  }
  return out;
}
