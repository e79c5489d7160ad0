// nftables rulesets as the interpreter reads them: tables of chains (hook, priority, policy, rule texts) and
// sets and maps (elements with their comments), from either form nft speaks: an `nft -f` script (what `compile`
// prints, applied in order as nft would) or `nft list` output (what the kernel holds). Rule texts stay text;
// nft-syntax.ts reads them. Pure.
import { TraceInputError } from './types.js';

export type NftHook = 'prerouting' | 'input' | 'forward' | 'output' | 'postrouting' | 'ingress' | 'egress';

export interface NftBaseChain {
  readonly type: string;
  readonly hook: NftHook;
  readonly priority: number;
  readonly policy: 'accept' | 'drop';
}

export interface NftChainModel {
  readonly name: string;
  readonly base: NftBaseChain | undefined;
  /** Rule texts as written, a trailing `comment "…"` included. */
  rules: string[];
}

export interface NftElementModel {
  readonly key: string;
  readonly value: string | undefined;
  readonly comment: string | undefined;
}

export interface NftSetModel {
  readonly name: string;
  readonly kind: 'set' | 'map';
  /** By key. */
  readonly elements: Map<string, NftElementModel>;
}

export interface NftTableModel {
  readonly family: string;
  readonly name: string;
  readonly chains: Map<string, NftChainModel>;
  readonly sets: Map<string, NftSetModel>;
}

/** Every table read, by `family name`. */
export class NftRuleset {
  readonly tables = new Map<string, NftTableModel>();

  get(family: string, name: string): NftTableModel | undefined {
    return this.tables.get(`${family} ${name}`);
  }

  private ensure(family: string, name: string): NftTableModel {
    const id = `${family} ${name}`;
    let t = this.tables.get(id);
    if (t === undefined) {
      t = { family, name, chains: new Map(), sets: new Map() };
      this.tables.set(id, t);
    }
    return t;
  }

  /**
   * Applies an `nft -f` script: add, flush and delete of tables, chains, sets and maps, rules added, elements
   * added and deleted. Throws TraceInputError naming the line.
   */
  applyScript(text: string, source: string): this {
    const lines = text.split('\n');
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i]!.trim();
      if (line === '' || line.startsWith('#')) continue;
      const where = `${source} line ${i + 1}`;
      try {
        this.applyLine(line, where);
      } catch (e) {
        if (e instanceof TraceInputError) throw e;
        throw new TraceInputError(`${where}: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
    return this;
  }

  private applyLine(line: string, where: string): void {
    const m = /^(?:(add|create|flush|delete|destroy|insert)\s+)?(table|chain|set|map|rule|element)\s+(ip6?|inet|arp|bridge|netdev)\s+(\S+)\s*(.*)$/.exec(line);
    if (m === null) throw new TraceInputError(`${where}: "${line}" is not an nft command this reads`);
    const [, verbText, object, family, tableName, rest] = m as unknown as [string, string | undefined, string, string, string, string];
    const verb = verbText ?? 'add';
    if (object === 'table') {
      if (verb === 'delete' || verb === 'destroy') this.tables.delete(`${family} ${tableName}`);
      else if (verb === 'flush') {
        const t = this.need(family, tableName, where);
        for (const c of t.chains.values()) c.rules = [];
        for (const s of t.sets.values()) s.elements.clear();
      } else this.ensure(family, tableName);
      return;
    }
    const t = this.need(family, tableName, where);
    const nameMatch = /^(\S+)\s*(.*)$/.exec(rest);
    if (nameMatch === null) throw new TraceInputError(`${where}: ${object} without a name`);
    const [, name, body] = nameMatch as unknown as [string, string, string];
    switch (object) {
      case 'chain': {
        if (verb === 'delete' || verb === 'destroy') {
          t.chains.delete(name);
        } else if (verb === 'flush') {
          needChain(t, name, where).rules = [];
        } else if (!t.chains.has(name)) {
          const spec = braces(body, where);
          t.chains.set(name, { name, base: spec === undefined ? undefined : baseChainOf(spec, where), rules: [] });
        }
        return;
      }
      case 'set':
      case 'map': {
        if (verb === 'delete' || verb === 'destroy') t.sets.delete(name);
        else if (verb === 'flush') needSet(t, name, where).elements.clear();
        else if (!t.sets.has(name)) t.sets.set(name, { name, kind: object, elements: new Map() });
        return;
      }
      case 'rule': {
        const c = needChain(t, name, where);
        if (verb === 'insert') c.rules.unshift(body);
        else c.rules.push(body);
        return;
      }
      case 'element': {
        const s = needSet(t, name, where);
        const list = braces(body, where);
        if (list === undefined) throw new TraceInputError(`${where}: elements without { }`);
        for (const e of parseElements(list, where)) {
          if (verb === 'delete' || verb === 'destroy') s.elements.delete(e.key);
          else s.elements.set(e.key, e);
        }
        return;
      }
    }
  }

  private need(family: string, name: string, where: string): NftTableModel {
    const t = this.get(family, name);
    if (t === undefined) throw new TraceInputError(`${where}: no table ${family} ${name}`);
    return t;
  }

  /** Reads `nft list ruleset` (or `nft list table ...`) output into tables; throws TraceInputError naming the line. */
  static fromListing(text: string, source: string): NftRuleset {
    const rs = new NftRuleset();
    const lines = text.split('\n');
    let i = 0;
    const where = (): string => `${source} line ${i + 1}`;
    /** The next line's text, trimmed, with continuation lines of an open `{` joined. */
    const statement = (): string => {
      let s = lines[i]!.trim();
      while (depth(s) > 0 && i + 1 < lines.length) {
        i++;
        s += ` ${lines[i]!.trim()}`;
      }
      return s;
    };
    for (; i < lines.length; i++) {
      const head = lines[i]!.trim();
      if (head === '' || head.startsWith('#')) continue;
      const m = /^table\s+(\S+)\s+(\S+)\s*\{$/.exec(head);
      if (m === null) throw new TraceInputError(`${where()}: "${head}" where a table was expected`);
      const table = rs.ensure(m[1]!, m[2]!);
      for (i++; i < lines.length; i++) {
        const line = lines[i]!.trim();
        if (line === '') continue;
        if (line === '}') break;
        const block = /^(chain|set|map|flowtable|counter|quota|limit|ct\s+\S+|secmark|synproxy)\s+(\S+)\s*\{$/.exec(line);
        if (block === null) {
          if (/^(comment|flags)\b/.test(line)) continue;
          throw new TraceInputError(`${where()}: "${line}" is not understood in table ${m[1]!} ${m[2]!}`);
        }
        const [, kind, name] = block as unknown as [string, string, string];
        const body: string[] = [];
        for (i++; i < lines.length; i++) {
          const inner = lines[i]!.trim();
          if (inner === '}') break;
          if (inner !== '') body.push(statement());
        }
        if (kind === 'chain') table.chains.set(name, chainFromListing(name, body, where()));
        else if (kind === 'set' || kind === 'map') table.sets.set(name, setFromListing(name, kind, body, where()));
      }
    }
    return rs;
  }
}

function needChain(t: NftTableModel, name: string, where: string): NftChainModel {
  const c = t.chains.get(name);
  if (c === undefined) throw new TraceInputError(`${where}: no chain ${name} in table ${t.family} ${t.name}`);
  return c;
}

function needSet(t: NftTableModel, name: string, where: string): NftSetModel {
  const s = t.sets.get(name);
  if (s === undefined) throw new TraceInputError(`${where}: no set or map ${name} in table ${t.family} ${t.name}`);
  return s;
}

/** How many `{` are open at the end of `s` (quotes skipped). */
function depth(s: string): number {
  let d = 0;
  let quoted = false;
  for (const ch of s) {
    if (ch === '"') quoted = !quoted;
    else if (!quoted && ch === '{') d++;
    else if (!quoted && ch === '}') d--;
  }
  return d;
}

/** The text inside `{ … }` (the first open brace to its match), or undefined without braces. */
function braces(text: string, where: string): string | undefined {
  const start = text.indexOf('{');
  if (start < 0) return undefined;
  let d = 0;
  let quoted = false;
  for (let i = start; i < text.length; i++) {
    const ch = text[i];
    if (ch === '"') quoted = !quoted;
    else if (!quoted && ch === '{') d++;
    else if (!quoted && ch === '}' && --d === 0) return text.slice(start + 1, i).trim();
  }
  throw new TraceInputError(`${where}: unbalanced { in "${text}"`);
}

/** Splits at top-level commas (not in quotes or braces). */
export function splitTopLevel(text: string, sep = ','): string[] {
  const out: string[] = [];
  let d = 0;
  let quoted = false;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === '"') quoted = !quoted;
    else if (quoted) continue;
    else if (ch === '{') d++;
    else if (ch === '}') d--;
    else if (ch === sep && d === 0) {
      out.push(text.slice(start, i).trim());
      start = i + 1;
    }
  }
  const last = text.slice(start).trim();
  if (last !== '') out.push(last);
  return out;
}

/** `key [comment "…"] [timeout …] [expires …] [: value]`, as an element list holds them. */
export function parseElements(list: string, where: string): NftElementModel[] {
  return splitTopLevel(list).map((text) => {
    const colon = findSeparator(text);
    const left = colon < 0 ? text : text.slice(0, colon).trim();
    const value = colon < 0 ? undefined : text.slice(colon + 3).trim();
    const cm = /\s+comment\s+"([^"]*)"/.exec(left);
    const key = left
      .replace(/\s+comment\s+"[^"]*"/, '')
      .replace(/\s+(timeout|expires)\s+\S+/g, '')
      .trim();
    if (key === '') throw new TraceInputError(`${where}: an element without a key in "${list}"`);
    return { key, value, comment: cm?.[1] };
  });
}

/** Where ` : ` separates a map element's key from its value (outside quotes), or -1. */
function findSeparator(text: string): number {
  let quoted = false;
  for (let i = 0; i + 2 < text.length; i++) {
    if (text[i] === '"') quoted = !quoted;
    else if (!quoted && text[i] === ' ' && text[i + 1] === ':' && text[i + 2] === ' ') return i;
  }
  return -1;
}

const PRIORITY_NAMES: Readonly<Record<string, number>> = { raw: -300, mangle: -150, dstnat: -100, filter: 0, security: 50, srcnat: 100, out: 100, bridge: -200 };
const HOOKS: readonly NftHook[] = ['prerouting', 'input', 'forward', 'output', 'postrouting', 'ingress', 'egress'];

/** `type nat hook prerouting priority dstnat - 10 ; policy accept ;` (either punctuation) as a base chain. */
export function baseChainOf(spec: string, where: string): NftBaseChain | undefined {
  const m = /type\s+(\S+)\s+hook\s+(\S+)(?:\s+device\s+\S+)?\s+priority\s+([^;]+?)\s*(?:;|$)/.exec(spec);
  if (m === null) {
    if (/\btype\s+\S+\s+hook\b/.test(spec)) throw new TraceInputError(`${where}: base chain "${spec}" is not understood`);
    return undefined;
  }
  const [, type, hook, prio] = m as unknown as [string, string, string, string];
  if (!(HOOKS as readonly string[]).includes(hook)) throw new TraceInputError(`${where}: hook "${hook}" is not understood`);
  const pm = /^(-?\d+|[a-z]+)(?:\s*([+-])\s*(\d+))?$/.exec(prio.trim());
  const baseValue = pm === null ? undefined : /^-?\d+$/.test(pm[1]!) ? Number(pm[1]) : PRIORITY_NAMES[pm[1]!];
  if (pm === null || baseValue === undefined) throw new TraceInputError(`${where}: priority "${prio}" is not understood`);
  const offset = pm[2] === undefined ? 0 : (pm[2] === '-' ? -1 : 1) * Number(pm[3]);
  const policy = /policy\s+(accept|drop)/.exec(spec)?.[1] === 'drop' ? 'drop' : 'accept';
  return { type, hook: hook as NftHook, priority: baseValue + offset, policy };
}

function chainFromListing(name: string, body: readonly string[], where: string): NftChainModel {
  let base: NftBaseChain | undefined;
  const rules: string[] = [];
  for (const line of body) {
    if (/^type\s+\S+\s+hook\b/.test(line)) base = baseChainOf(line, where);
    else if (/^comment\s+"[^"]*"$/.test(line) || /^devices\s*=/.test(line)) continue;
    else rules.push(line);
  }
  return { name, base, rules };
}

function setFromListing(name: string, kind: 'set' | 'map', body: readonly string[], where: string): NftSetModel {
  const elements = new Map<string, NftElementModel>();
  for (const line of body) {
    const m = /^elements\s*=\s*/.exec(line);
    if (m === null) continue;
    const list = braces(line.slice(m[0].length), where);
    for (const e of parseElements(list ?? '', where)) elements.set(e.key, e);
  }
  return { name, kind, elements };
}
