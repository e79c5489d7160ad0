// iptables rulesets as the interpreter reads them: `iptables-save` output (the kernel's tables) and
// `iptables-restore --noflush` input (what `compile` prints) applied to what is there, so both end as one
// model: tables of chains, each with its rules in order and, for built-in chains, the policy. Pure.
import { TraceInputError } from './types.js';

/** Built-in chains per table; their policy applies when a packet falls off their end. */
export const BUILTIN_CHAINS: Readonly<Record<string, readonly string[]>> = {
  filter: ['INPUT', 'FORWARD', 'OUTPUT'],
  nat: ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING'],
  mangle: ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'],
  raw: ['PREROUTING', 'OUTPUT'],
  security: ['INPUT', 'FORWARD', 'OUTPUT'],
};

export interface IptablesChain {
  readonly name: string;
  readonly builtin: boolean;
  /** A built-in chain's policy (ACCEPT unless the text says otherwise). */
  policy: 'ACCEPT' | 'DROP';
  /** Rule specs without `-A CHAIN `, in order. */
  rules: string[];
}

/** One family's tables: table → chain → rules. */
export class IptablesRuleset {
  readonly tables = new Map<string, Map<string, IptablesChain>>();

  table(name: string): Map<string, IptablesChain> {
    let t = this.tables.get(name);
    if (t === undefined) {
      t = new Map();
      for (const chain of BUILTIN_CHAINS[name] ?? []) t.set(chain, { name: chain, builtin: true, policy: 'ACCEPT', rules: [] });
      this.tables.set(name, t);
    }
    return t;
  }

  chain(table: string, name: string): IptablesChain | undefined {
    return this.tables.get(table)?.get(name);
  }

  /** Number of rules of every table, for summaries. */
  get ruleCount(): number {
    let n = 0;
    for (const t of this.tables.values()) for (const c of t.values()) n += c.rules.length;
    return n;
  }

  /**
   * Applies iptables-save output or iptables-restore input (as `--noflush`: a declared chain is created or
   * emptied, other chains keep their rules). `source` names the text in errors. Throws TraceInputError.
   */
  apply(text: string, source: string): this {
    let table: Map<string, IptablesChain> | undefined;
    let tableName = '';
    const lines = text.split('\n');
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i]!.trim();
      const where = `${source} line ${i + 1}`;
      if (line === '' || line.startsWith('#')) continue;
      if (line.startsWith('*')) {
        tableName = line.slice(1).trim();
        table = this.table(tableName);
        continue;
      }
      if (line === 'COMMIT') {
        table = undefined;
        continue;
      }
      if (table === undefined) throw new TraceInputError(`${where}: "${line}" outside a table (*filter ... COMMIT)`);
      if (line.startsWith(':')) {
        const [name, policy] = line.slice(1).split(/\s+/);
        if (name === undefined || name === '') throw new TraceInputError(`${where}: a chain declaration without a name`);
        const existing = table.get(name);
        if (existing?.builtin === true) {
          if (policy === 'ACCEPT' || policy === 'DROP') existing.policy = policy;
          else if (policy !== '-') throw new TraceInputError(`${where}: built-in chain ${name} with policy "${policy ?? ''}"`);
        } else if (existing !== undefined) existing.rules = [];
        else table.set(name, { name, builtin: false, policy: 'ACCEPT', rules: [] });
        continue;
      }
      const m = /^(-[AIDXFNP]|--append|--insert|--delete)\s+(\S+)\s*(.*)$/.exec(line) ?? /^(-[XF])()()$/.exec(line);
      if (m === null) throw new TraceInputError(`${where}: "${line}" is not an iptables-restore line`);
      const [, op, chainName, rest] = m as unknown as [string, string, string, string];
      const need = (): IptablesChain => {
        const c = table!.get(chainName);
        if (c === undefined) throw new TraceInputError(`${where}: no chain ${chainName} in table ${tableName}`);
        return c;
      };
      switch (op) {
        case '-A':
        case '--append':
          need().rules.push(rest);
          break;
        case '-I':
        case '--insert': {
          const pos = /^(\d+)\s+(.*)$/.exec(rest);
          const c = need();
          if (pos === null) c.rules.unshift(rest);
          else c.rules.splice(Math.max(0, Number(pos[1]) - 1), 0, pos[2]!);
          break;
        }
        case '-D':
        case '--delete': {
          const c = need();
          const at = /^\d+$/.test(rest) ? Number(rest) - 1 : c.rules.indexOf(rest);
          if (at < 0 || at >= c.rules.length) throw new TraceInputError(`${where}: no rule "${rest}" to delete in ${chainName}`);
          c.rules.splice(at, 1);
          break;
        }
        case '-X':
          if (chainName === '') {
            for (const [name, c] of table) if (!c.builtin) table.delete(name);
          } else if (need().builtin) throw new TraceInputError(`${where}: cannot delete built-in chain ${chainName}`);
          else table.delete(chainName);
          break;
        case '-F':
          if (chainName === '') for (const c of table.values()) c.rules = [];
          else need().rules = [];
          break;
        case '-N':
          if (table.has(chainName)) throw new TraceInputError(`${where}: chain ${chainName} already exists`);
          table.set(chainName, { name: chainName, builtin: false, policy: 'ACCEPT', rules: [] });
          break;
        case '-P': {
          const c = need();
          if (!c.builtin || (rest !== 'ACCEPT' && rest !== 'DROP')) throw new TraceInputError(`${where}: bad policy "${rest}" for ${chainName}`);
          c.policy = rest;
          break;
        }
      }
    }
    if (table !== undefined) throw new TraceInputError(`${source}: table ${tableName} has no COMMIT`);
    return this;
  }
}

/** Splits a rule spec into words as iptables-save quotes them: "a b" is one word, \" and \\ are escapes. */
export function ruleWords(spec: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < spec.length) {
    while (spec[i] === ' ' || spec[i] === '\t') i++;
    if (i >= spec.length) break;
    if (spec[i] !== '"') {
      let end = i;
      while (end < spec.length && spec[end] !== ' ' && spec[end] !== '\t') end++;
      out.push(spec.slice(i, end));
      i = end;
      continue;
    }
    let word = '';
    let start = ++i;
    while (i < spec.length && spec[i] !== '"') {
      if (spec[i] === '\\' && i + 1 < spec.length) {
        word += spec.slice(start, i);
        start = ++i;
      }
      i++;
    }
    out.push(word + spec.slice(start, i));
    i++;
  }
  return out;
}
