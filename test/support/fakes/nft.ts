// An in-memory nftables that applies typed transactions (src/kernel/syntax/nft.ts) as the kernel does, after
// knftables' Fake: strict where nft is (a missing object, a referenced chain or set, a map key added again
// with another value), atomic per transaction, and dumped in one canonical, sorted form for comparisons.
// Behaviour checked against nft 1.0.6 on Linux 6.x (see test/unit/fakes/nft.test.ts).
import {
  NAME_LENGTH_MAX,
  type NftObject,
  type NftOp,
  type NftTransaction,
  type NftTable,
  commentText,
  renderTransaction,
} from '../../../src/kernel/syntax/nft.js';

interface FakeChain {
  base: string | undefined;
  comment: string | undefined;
  rules: string[];
}

interface FakeSet {
  kind: 'set' | 'map';
  spec: string;
  /** key → value ('' for set elements); comments are not part of identity (nft ignores them on re-add). */
  elements: Map<string, string>;
}

interface FakeTable {
  comment: string | undefined;
  chains: Map<string, FakeChain>;
  sets: Map<string, FakeSet>;
}

/** A read-only view of one table, for tracers: chains (hook spec, rules) and sets and maps (elements). */
export interface FakeTableView {
  readonly chains: ReadonlyMap<string, { readonly base: string | undefined; readonly rules: readonly string[] }>;
  readonly sets: ReadonlyMap<string, { readonly kind: 'set' | 'map'; readonly elements: ReadonlyMap<string, string> }>;
}

/** A transaction nft would refuse: which operation, and why (nft's own words where it has them). */
export class FakeNftError extends Error {
  override readonly name = 'FakeNftError';
}

export class FakeNft {
  private tables = new Map<string, FakeTable>();
  /** Every transaction applied, rendered: what `nft -f` would have read. */
  readonly applied: string[] = [];

  /** Applies all of `tx` or, on the first refused operation, none of it. */
  apply(tx: NftTransaction): void {
    const next = clone(this.tables);
    const id = tableId(tx.table);
    let n = 0;
    for (const op of tx.ops) {
      n++;
      try {
        applyOp(next, id, op);
      } catch (e) {
        const line = [...renderTransaction({ table: tx.table, ops: [op] })].join('').trimEnd();
        throw new FakeNftError(`operation ${n} (${line}): ${e instanceof Error ? e.message : String(e)}`);
      }
    }
    this.tables = next;
    this.applied.push([...renderTransaction(tx)].join(''));
  }

  hasTable(table: NftTable): boolean {
    return this.tables.has(tableId(table));
  }

  /** Names of a table's chains and sets (maps excluded), as `nft -j list chains|sets` reads them. */
  names(table: NftTable, kind: 'chains' | 'sets'): string[] {
    const t = this.tables.get(tableId(table));
    if (t === undefined) return [];
    return kind === 'chains' ? [...t.chains.keys()] : [...t.sets].filter(([, s]) => s.kind === 'set').map(([name]) => name);
  }

  /** A chain's rules, or undefined without it. */
  rules(table: NftTable, chain: string): readonly string[] | undefined {
    return this.tables.get(tableId(table))?.chains.get(chain)?.rules;
  }

  /** The table as it stands now (later transactions do not change it), or undefined without it. */
  view(table: NftTable): FakeTableView | undefined {
    return this.tables.get(tableId(table));
  }

  /** Canonical text: tables, chains, sets and elements sorted by name; rules in order. */
  dump(): string {
    const out: string[] = [];
    for (const [id, t] of [...this.tables].sort(byKey)) {
      out.push(`table ${id}${t.comment === undefined ? '' : ` comment ${t.comment}`}`);
      for (const [name, s] of [...t.sets].sort(byKey)) {
        out.push(`  ${s.kind} ${name} { ${s.spec} }`);
        for (const [key, value] of [...s.elements].sort(byKey)) out.push(`    ${key}${value === '' ? '' : ` : ${value}`}`);
      }
      for (const [name, c] of [...t.chains].sort(byKey)) {
        out.push(`  chain ${name}${c.base === undefined ? '' : ` { ${c.base} }`}${c.comment === undefined ? '' : ` comment ${c.comment}`}`);
        for (const rule of c.rules) out.push(`    ${rule}`);
      }
    }
    return `${out.join('\n')}\n`;
  }
}

const byKey = <V>(a: [string, V], b: [string, V]): number => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0);
const tableId = (t: NftTable): string => `${t.family} ${t.name}`;

function clone(tables: Map<string, FakeTable>): Map<string, FakeTable> {
  const out = new Map<string, FakeTable>();
  for (const [id, t] of tables) {
    out.set(id, {
      comment: t.comment,
      chains: new Map([...t.chains].map(([n, c]) => [n, { ...c, rules: [...c.rules] }])),
      sets: new Map([...t.sets].map(([n, s]) => [n, { ...s, elements: new Map(s.elements) }])),
    });
  }
  return out;
}

function checkName(name: string): void {
  if (name.length > NAME_LENGTH_MAX) throw new Error(`name too long, ${NAME_LENGTH_MAX + 1} characters maximum allowed`);
}

/** Comments as nft holds them once rendered (cut to its limit); the renderer is the one place that enforces it. */
const held = (comment: string | undefined): string | undefined => (comment === undefined ? undefined : commentText(comment));

/** Chains a rule or verdict jumps to (`jump X`, `goto X`, also inside anonymous vmaps). */
function chainRefs(text: string): string[] {
  return [...text.matchAll(/\b(?:jump|goto) ([^\s,}]+)/g)].map((m) => m[1]!);
}

/** Named sets and maps a rule reads (`@name`). */
function setRefs(text: string): string[] {
  return [...text.matchAll(/@([^\s,}]+)/g)].map((m) => m[1]!);
}

function referencesTo(t: FakeTable, name: string, kind: 'chain' | 'set'): string | undefined {
  for (const [chain, c] of t.chains) {
    for (const rule of c.rules) {
      const refs = kind === 'chain' ? chainRefs(rule) : setRefs(rule);
      if (refs.includes(name)) return `rule in chain ${chain}`;
    }
  }
  if (kind === 'chain') {
    for (const [set, s] of t.sets) for (const [key, value] of s.elements) if (chainRefs(value).includes(name)) return `element ${key} of ${set}`;
  }
  return undefined;
}

function applyOp(tables: Map<string, FakeTable>, id: string, { verb, object }: NftOp): void {
  if (object.kind === 'table') {
    if (verb === 'add') {
      const t = tables.get(id);
      if (t === undefined) tables.set(id, { comment: held(object.comment), chains: new Map(), sets: new Map() });
      else if (object.comment !== undefined) t.comment = held(object.comment);
    } else if (verb === 'delete') {
      if (!tables.delete(id)) throw new Error('No such file or directory (table)');
    } else {
      const t = need(tables.get(id), 'table');
      for (const c of t.chains.values()) c.rules = [];
      for (const s of t.sets.values()) s.elements.clear();
    }
    return;
  }
  const t = need(tables.get(id), 'table');
  applyToTable(t, verb, object);
}

function need<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`No such file or directory (${what})`);
  return value;
}

function applyToTable(t: FakeTable, verb: NftOp['verb'], object: Exclude<NftObject, { kind: 'table' }>): void {
  switch (object.kind) {
    case 'chain': {
      checkName(object.name);
      if (verb === 'add') {
        const base = object.base === undefined ? undefined : `type ${object.base.type} hook ${object.base.hook} priority ${object.base.priority}`;
        const c = t.chains.get(object.name);
        if (c === undefined) t.chains.set(object.name, { base, comment: held(object.comment), rules: [] });
        else if (c.base !== base) throw new Error('Operation not supported (a chain cannot change its hook)');
      } else if (verb === 'flush') {
        need(t.chains.get(object.name), `chain ${object.name}`).rules = [];
      } else {
        need(t.chains.get(object.name), `chain ${object.name}`);
        const by = referencesTo(t, object.name, 'chain');
        if (by !== undefined) throw new Error(`Device or resource busy (chain ${object.name} is referenced by ${by})`);
        t.chains.delete(object.name);
      }
      return;
    }
    case 'rule': {
      const c = need(t.chains.get(object.chain), `chain ${object.chain}`);
      for (const target of chainRefs(object.rule)) need(t.chains.get(target), `chain ${target}`);
      for (const set of setRefs(object.rule)) need(t.sets.get(set), `set ${set}`);
      c.rules.push(object.comment === undefined ? object.rule : `${object.rule} comment "${held(object.comment)}"`);
      return;
    }
    case 'set':
    case 'map': {
      checkName(object.name);
      if (verb === 'add') {
        const spec = [
          object.type === undefined ? '' : `type ${object.type}`,
          object.typeof === undefined ? '' : `typeof ${object.typeof}`,
          object.flags === undefined ? '' : `flags ${object.flags.join(',')}`,
          object.timeout === undefined ? '' : `timeout ${object.timeout}`,
        ]
          .filter((s) => s !== '')
          .join(' ; ');
        const s = t.sets.get(object.name);
        if (s === undefined) t.sets.set(object.name, { kind: object.kind, spec, elements: new Map() });
        else if (s.kind !== object.kind) throw new Error(`File exists (${object.name} is a ${s.kind})`);
        // nft takes a re-added set's new timeout and keeps its elements.
        else s.spec = spec;
      } else if (verb === 'flush') {
        need(t.sets.get(object.name), `${object.kind} ${object.name}`).elements.clear();
      } else {
        need(t.sets.get(object.name), `${object.kind} ${object.name}`);
        const by = referencesTo(t, object.name, 'set');
        if (by !== undefined) throw new Error(`Device or resource busy (set ${object.name} is referenced by ${by})`);
        t.sets.delete(object.name);
      }
      return;
    }
    case 'elements': {
      if (verb === 'flush') throw new Error('flush element is not an nft command');
      const s = need(t.sets.get(object.set), `set ${object.set}`);
      for (const e of object.elements) {
        if (verb === 'delete') {
          if (!s.elements.delete(e.key)) throw new Error(`No such file or directory (element ${e.key} of ${object.set})`);
          continue;
        }
        const value = e.value ?? '';
        if ((s.kind === 'map') !== (e.value !== undefined)) throw new Error(`element ${e.key}: a ${s.kind} ${s.kind === 'map' ? 'needs' : 'takes no'} value`);
        for (const target of chainRefs(value)) need(t.chains.get(target), `chain ${target}`);
        const had = s.elements.get(e.key);
        if (had !== undefined && had !== value) throw new Error(`File exists (element ${e.key} of ${object.set} maps to ${had})`);
        s.elements.set(e.key, value);
      }
      return;
    }
  }
}
