// An in-memory `iptables-restore --noflush` (one instance per family), at the text level of its input: it
// applies what Switchboard writes and refuses what the real tool refuses, so a test can run real payloads
// against it and compare canonical dumps. Semantics from iptables 1.8's restore loop (legacy and nft agree):
// each COMMIT is its own transaction; the first refused line aborts the open one and stops the run, earlier
// COMMITs stay; a chain line creates or flushes a user chain and only sets the policy of a built-in one.
// Rules are compared and printed as their words (quotes and escapes resolved, re-quoted where needed); the
// tool's own rewriting of rules (`-d 10.0.0.1` saved as `-d 10.0.0.1/32`, implicit `-m tcp`) is not modelled.
import { FakeToolError, byString, numberedLines } from './common.js';

const TOOL = 'iptables-restore';

/** Built-in chains per table, in hook order (iptables-save prints them so). */
const BUILTIN: Readonly<Record<string, readonly string[]>> = {
  filter: ['INPUT', 'FORWARD', 'OUTPUT'],
  nat: ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING'],
  mangle: ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'],
  raw: ['PREROUTING', 'OUTPUT'],
  security: ['INPUT', 'FORWARD', 'OUTPUT'],
};
/** iptables-save's table order (as in a real nf_tables 1.8.9 dump: mangle, raw, filter, nat). */
const SAVE_ORDER = ['mangle', 'raw', 'filter', 'nat', 'security'];
const DEFAULT_TABLES = ['filter', 'nat', 'mangle'];
/** XT_EXTENSION_MAXNAMELEN - 1. */
const CHAIN_NAME_MAX = 28;
const POLICIES = new Set(['ACCEPT', 'DROP']);

interface Rule {
  /** The words after `-A CHAIN`, as the tool's tokenizer splits them. */
  readonly words: readonly string[];
  /** The words printed back, quoted where needed: identity for -D and the text of save() and dump(). */
  readonly text: string;
  /** The `-j`/`-g` target, if any. */
  readonly target: string | undefined;
  /** Sets named by `--match-set`. */
  readonly sets: readonly string[];
}

interface Chain {
  /** ACCEPT or DROP for a built-in chain; undefined for a user chain. */
  policy: string | undefined;
  rules: Rule[];
}

type Table = Map<string, Chain>;

export interface FakeIptablesOptions {
  /** iptables-save output to start from; without it, empty filter, nat and mangle tables (policies ACCEPT). */
  readonly dump?: string;
  /**
   * Whether an ipset exists: when given, a rule naming a missing set (`-m set --match-set NAME`) is refused, as
   * the xt_set match refuses it in the kernel. Without it, sets are not checked.
   */
  readonly setExists?: (name: string) => boolean;
}

export interface IptablesDumpOptions {
  /** Chains (in any table) whose rule order does not matter: their rules are dumped sorted. */
  readonly unorderedChains?: readonly string[];
  /**
   * Rules (`-A CHAIN spec`) of an unordered chain that must stay its last ones: a trailing run of them is
   * dumped in order after a `# last` marker, so a misplaced one shows up as a difference.
   */
  readonly lastRules?: readonly string[];
}

export class FakeIptables {
  private tables = new Map<string, Table>();
  private readonly setExists: ((name: string) => boolean) | undefined;

  /** `init`: an iptables-save dump, or options. */
  constructor(init: string | FakeIptablesOptions = {}) {
    const options = typeof init === 'string' ? { dump: init } : init;
    this.setExists = options.setExists;
    if (options.dump === undefined) {
      for (const name of DEFAULT_TABLES) this.tables.set(name, emptyTable(name));
    } else {
      // A dump is restore input that replaces the tables it names (restore without --noflush).
      this.apply(options.dump, false);
    }
  }

  /** `iptables-restore --noflush`: applies each COMMIT whole or not at all; throws at the first refused line. */
  restore(text: string): void {
    this.apply(text, true);
  }

  /** The tables, in iptables-save's form and order (counters `[0:0]`, no comment lines). */
  save(): string {
    const out: string[] = [];
    const names = [...this.tables.keys()].sort((a, b) => saveRank(a) - saveRank(b) || byString(a, b));
    for (const name of names) {
      const table = this.tables.get(name)!;
      const builtins = BUILTIN[name] ?? [];
      const users = [...table.keys()].filter((c) => !builtins.includes(c)).sort(byString);
      out.push(`*${name}`);
      for (const c of [...builtins, ...users]) out.push(`:${c} ${table.get(c)!.policy ?? '-'} [0:0]`);
      for (const c of [...builtins, ...users]) for (const r of table.get(c)!.rules) out.push(ruleLine(c, r.text));
      out.push('COMMIT');
    }
    return `${out.join('\n')}\n`;
  }

  /**
   * A canonical form for comparisons: tables and chains sorted by name (empty user chains listed), each
   * chain's rules in order, except in `unorderedChains` (see IptablesDumpOptions).
   */
  dump(opts: IptablesDumpOptions = {}): string {
    const unordered = new Set(opts.unorderedChains ?? []);
    const last = new Set((opts.lastRules ?? []).map(canonicalRule));
    const out: string[] = [];
    for (const [name, table] of [...this.tables].sort((a, b) => byString(a[0], b[0]))) {
      out.push(`*${name}`);
      for (const [chain, c] of [...table].sort((a, b) => byString(a[0], b[0]))) {
        out.push(`:${chain} ${c.policy ?? '-'}`);
        const lines = c.rules.map((r) => ruleLine(chain, r.text));
        if (!unordered.has(chain)) {
          out.push(...lines);
          continue;
        }
        let cut = lines.length;
        while (cut > 0 && last.has(lines[cut - 1]!)) cut--;
        out.push(...lines.slice(0, cut).sort(byString));
        if (cut < lines.length) out.push('# last', ...lines.slice(cut));
      }
    }
    return `${out.join('\n')}\n`;
  }

  /** Table names, sorted. */
  tableNames(): string[] {
    return [...this.tables.keys()].sort(byString);
  }

  /** A table's chain names, sorted; undefined without the table. */
  chains(table: string): string[] | undefined {
    const t = this.tables.get(table);
    return t === undefined ? undefined : [...t.keys()].sort(byString);
  }

  /** A chain's rules (the text after `-A CHAIN `), in order; undefined without the chain. */
  rules(table: string, chain: string): string[] | undefined {
    return this.tables.get(table)?.get(chain)?.rules.map((r) => r.text);
  }

  /** A built-in chain's policy; undefined for a user chain or a missing one. */
  policy(table: string, chain: string): string | undefined {
    return this.tables.get(table)?.get(chain)?.policy;
  }

  /** Whether any rule in any table matches on the set (`--match-set NAME`): what keeps ipset from destroying it. */
  usesSet(name: string): boolean {
    for (const table of this.tables.values()) for (const c of table.values()) for (const r of c.rules) if (r.sets.includes(name)) return true;
    return false;
  }

  private apply(text: string, noflush: boolean): void {
    let open: { name: string; table: Table } | undefined;
    let last = 0;
    for (const { n, line } of numberedLines(text)) {
      last = n;
      // Only an empty line is skipped: the tool compares the raw buffer with "\n".
      if (line === '' || line.startsWith('#')) continue;
      const fail = (reason: string): FakeToolError => new FakeToolError(TOOL, n, line, reason);
      if (open === undefined) {
        if (!line.startsWith('*')) throw fail('not inside a table (expected *table)');
        const name = line.slice(1).split(/[ \t]/)[0] ?? '';
        if (BUILTIN[name] === undefined) throw fail(`table name '${name}' invalid`);
        const current = this.tables.get(name);
        open = { name, table: noflush && current !== undefined ? cloneTable(current) : emptyTable(name) };
      } else if (line === 'COMMIT') {
        const loop = findLoop(open.table);
        if (loop !== undefined) throw fail(`Too many levels of links: the chains loop (${loop.join(' -> ')})`);
        this.tables.set(open.name, open.table);
        open = undefined;
      } else {
        try {
          applyLine(open.name, open.table, line, this.setExists);
        } catch (e) {
          throw fail(e instanceof Error ? e.message : String(e));
        }
      }
    }
    // The open table's changes are dropped: the tool only commits on COMMIT.
    if (open !== undefined) throw new FakeToolError(TOOL, last + 1, '', 'COMMIT expected');
  }
}

const saveRank = (table: string): number => {
  const i = SAVE_ORDER.indexOf(table);
  return i < 0 ? SAVE_ORDER.length : i;
};

const ruleLine = (chain: string, text: string): string => (text === '' ? `-A ${chain}` : `-A ${chain} ${text}`);

function emptyTable(name: string): Table {
  return new Map((BUILTIN[name] ?? []).map((c) => [c, { policy: 'ACCEPT', rules: [] }]));
}

function cloneTable(table: Table): Table {
  return new Map([...table].map(([name, c]) => [name, { policy: c.policy, rules: [...c.rules] }]));
}

/**
 * Splits a line into words as iptables-restore does: spaces and tabs separate words; `"` opens a quoted part
 * (joined to the word it touches) which a closing `"` ends, and in which `\` escapes the next character.
 */
export function iptablesWords(line: string): string[] {
  const words: string[] = [];
  let word = '';
  let started = false;
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quoted) {
      if (c === '\\' && i + 1 < line.length) word += line[++i];
      else if (c === '"') {
        quoted = false;
        words.push(word);
        word = '';
        started = false;
      } else word += c;
    } else if (c === '"') {
      quoted = true;
      started = true;
    } else if (c === ' ' || c === '\t') {
      if (started) words.push(word);
      word = '';
      started = false;
    } else {
      word += c;
      started = true;
    }
  }
  if (quoted) throw new Error('unterminated quoted string');
  if (started) words.push(word);
  return words;
}

/** A word as iptables-save prints it: bare when it can be, else in double quotes with `"` and `\` escaped. */
function quoteWord(word: string): string {
  return /^[^\s"'\\]+$/.test(word) ? word : `"${word.replace(/["\\]/g, (c) => `\\${c}`)}"`;
}

const wordsText = (words: readonly string[]): string => words.map(quoteWord).join(' ');

/** A rule (or a whole `-A CHAIN spec` line) in the quoting rules() and dump() print. */
export function canonicalRule(text: string): string {
  return wordsText(iptablesWords(text));
}

function parseRule(words: readonly string[]): Rule {
  let target: string | undefined;
  const sets: string[] = [];
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    // A comment's text is one argument, whatever it says.
    if (w === '--comment') {
      if (i + 1 >= words.length) throw new Error('option "--comment" requires an argument');
      i++;
    } else if (w === '-j' || w === '--jump' || w === '-g' || w === '--goto') {
      const t = words[i + 1];
      if (t === undefined || t === '') throw new Error(`option "${w}" requires an argument`);
      if (target !== undefined) throw new Error('multiple -j flags not allowed');
      target = t;
      i++;
    } else if (w === '--match-set') {
      const set = words[i + 1];
      if (set === undefined || words[i + 2] === undefined) throw new Error('--match-set requires two arguments');
      sets.push(set);
      i += 2;
    }
  }
  return { words, text: wordsText(words), target, sets };
}

/** A rule's target must be a user chain of the table, or a verdict or extension target (ALL-CAPS, no '-'). */
function checkRule(tableName: string, table: Table, rule: Rule, setExists: ((name: string) => boolean) | undefined): void {
  const t = rule.target;
  if (t !== undefined) {
    if ((BUILTIN[tableName] ?? []).includes(t)) throw new Error(`cannot jump to built-in chain ${t}`);
    if (!table.has(t) && !/^[A-Z][A-Z0-9_]*$/.test(t)) throw new Error(`Couldn't load target \`${t}': No such file or directory (no chain ${t} in table ${tableName})`);
  }
  if (setExists !== undefined) for (const s of rule.sets) if (!setExists(s)) throw new Error(`Set ${s} doesn't exist.`);
}

function checkChainName(name: string): void {
  if (name.length > CHAIN_NAME_MAX) throw new Error(`Invalid chain name \`${name}' (${CHAIN_NAME_MAX} chars max)`);
  if (name === '' || name.startsWith('-') || name.startsWith('!')) throw new Error(`Invalid chain name \`${name}'`);
}

const COMMANDS: Readonly<Record<string, string>> = {
  '-A': 'A', '--append': 'A',
  '-I': 'I', '--insert': 'I',
  '-D': 'D', '--delete': 'D',
  '-R': 'R', '--replace': 'R',
  '-N': 'N', '--new-chain': 'N',
  '-X': 'X', '--delete-chain': 'X',
  '-F': 'F', '--flush': 'F',
  '-P': 'P', '--policy': 'P',
  '-Z': 'Z', '--zero': 'Z',
};

/** One line inside a table: a chain declaration or a command. Mutates `table`; throws the tool's complaint. */
function applyLine(tableName: string, table: Table, line: string, setExists: ((name: string) => boolean) | undefined): void {
  const builtins = BUILTIN[tableName] ?? [];
  if (line.startsWith(':')) {
    const [name = '', policy] = line.slice(1).split(/[ \t]+/);
    checkChainName(name);
    if (policy === undefined || policy === '') throw new Error('policy invalid');
    if (builtins.includes(name)) {
      // No flush here, even with --noflush: the tool only sets the policy of a built-in chain.
      if (policy !== '-') {
        if (!POLICIES.has(policy)) throw new Error(`Can't set policy \`${policy}' on \`${name}': Bad policy name`);
        table.get(name)!.policy = policy;
      }
      return;
    }
    if (policy !== '-') throw new Error(`Can't set policy \`${policy}' on \`${name}': Bad built-in chain name`);
    const c = table.get(name);
    if (c === undefined) table.set(name, { policy: undefined, rules: [] });
    else c.rules = [];
    return;
  }
  const words = iptablesWords(line);
  const command = COMMANDS[words[0] ?? ''];
  if (command === undefined) throw new Error(`unknown command ${words[0] ?? ''} (a line starts with -A, -I, -D, -R, -N, -X, -F, -P or -Z)`);
  const chainName = words[1];
  const rest = words.slice(2);
  const need = (): Chain => {
    if (chainName === undefined) throw new Error(`${words[0]} needs a chain`);
    const c = table.get(chainName);
    if (c === undefined) throw new Error(`No chain/target/match by that name (chain ${chainName} does not exist)`);
    return c;
  };
  /** `-I`/`-D`/`-R`'s optional rule number: a word after the chain that is not an option. */
  const ruleNumber = (): number | undefined => {
    const w = rest[0];
    if (w === undefined || w.startsWith('-') || w.startsWith('!')) return undefined;
    if (!/^\d+$/.test(w) || Number(w) < 1) throw new Error(`Invalid rule number \`${w}'`);
    rest.shift();
    return Number(w);
  };
  const ruleOf = (ws: readonly string[]): Rule => {
    const first = ws[0];
    if (first !== undefined && !first.startsWith('-') && !first.startsWith('!')) throw new Error(`Bad argument \`${first}'`);
    const r = parseRule(ws);
    checkRule(tableName, table, r, setExists);
    return r;
  };
  switch (command) {
    case 'A': {
      const c = need();
      c.rules.push(ruleOf(rest));
      return;
    }
    case 'I': {
      const c = need();
      const n = ruleNumber() ?? 1;
      if (n > c.rules.length + 1) throw new Error(`Index of insertion too big (rule ${n} in a chain of ${c.rules.length})`);
      c.rules.splice(n - 1, 0, ruleOf(rest));
      return;
    }
    case 'R': {
      const c = need();
      const n = ruleNumber();
      if (n === undefined) throw new Error('-R needs a rule number');
      if (n > c.rules.length) throw new Error(`Index of replacement too big (rule ${n} in a chain of ${c.rules.length})`);
      c.rules[n - 1] = ruleOf(rest);
      return;
    }
    case 'D': {
      const c = need();
      const n = ruleNumber();
      if (n !== undefined) {
        if (rest.length > 0) throw new Error('-D takes a rule number or a rule, not both');
        if (n > c.rules.length) throw new Error(`Index of deletion too big (rule ${n} in a chain of ${c.rules.length})`);
        c.rules.splice(n - 1, 1);
        return;
      }
      const text = parseRule(rest).text;
      const i = c.rules.findIndex((r) => r.text === text);
      if (i < 0) throw new Error(`Bad rule (does a matching rule exist in that chain?)`);
      c.rules.splice(i, 1);
      return;
    }
    case 'N': {
      if (chainName === undefined) throw new Error('-N needs a chain');
      if (rest.length > 0) throw new Error(`Bad argument \`${rest[0]}'`);
      checkChainName(chainName);
      if (table.has(chainName)) throw new Error(`Chain already exists (${chainName})`);
      table.set(chainName, { policy: undefined, rules: [] });
      return;
    }
    case 'X': {
      if (chainName === undefined) throw new Error('-X without a chain (delete every user chain) is not modelled');
      if (rest.length > 0) throw new Error(`Bad argument \`${rest[0]}'`);
      const c = need();
      if (builtins.includes(chainName)) throw new Error(`Can't delete built-in chain ${chainName}`);
      if (c.rules.length > 0) throw new Error(`Directory not empty (chain ${chainName} has ${c.rules.length} rules)`);
      for (const [other, oc] of table) {
        if (oc.rules.some((r) => r.target === chainName)) throw new Error(`Too many links (chain ${chainName} is referenced from ${other})`);
      }
      table.delete(chainName);
      return;
    }
    case 'F': {
      if (rest.length > 0) throw new Error(`Bad argument \`${rest[0]}'`);
      if (chainName === undefined) for (const c of table.values()) c.rules = [];
      else need().rules = [];
      return;
    }
    case 'P': {
      const policy = rest[0];
      if (chainName === undefined || policy === undefined || rest.length > 1) throw new Error('-P needs a chain and a policy');
      need();
      if (!builtins.includes(chainName)) throw new Error(`Can't set policy \`${policy}' on \`${chainName}': Bad built-in chain name`);
      if (!POLICIES.has(policy)) throw new Error(`Can't set policy \`${policy}' on \`${chainName}': Bad policy name`);
      table.get(chainName)!.policy = policy;
      return;
    }
    default: {
      // -Z: counters are not modelled; the chain must exist.
      if (chainName !== undefined) need();
      return;
    }
  }
}

/** A cycle of jumps between chains, which the kernel refuses (ELOOP), as the chain names around it. */
function findLoop(table: Table): string[] | undefined {
  const state = new Map<string, 'visiting' | 'done'>();
  const path: string[] = [];
  const visit = (chain: string): string[] | undefined => {
    const s = state.get(chain);
    if (s === 'done') return undefined;
    if (s === 'visiting') return [...path.slice(path.indexOf(chain)), chain];
    state.set(chain, 'visiting');
    path.push(chain);
    for (const r of table.get(chain)?.rules ?? []) {
      if (r.target === undefined || !table.has(r.target)) continue;
      const loop = visit(r.target);
      if (loop !== undefined) return loop;
    }
    path.pop();
    state.set(chain, 'done');
    return undefined;
  };
  for (const chain of [...table.keys()].sort(byString)) {
    const loop = visit(chain);
    if (loop !== undefined) return loop;
  }
  return undefined;
}
