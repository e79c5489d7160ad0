// nft transactions as typed operations (after kubernetes-sigs/knftables: objects, not strings, so that a fake
// can apply them and a dry run prints exactly what is applied). Unlike knftables, a transaction is a lazy
// iterable rendered while it streams to `nft -f -`: a full sync at 10,000 Services is tens of MB, and neither
// its operations nor its text are ever held whole. Pure.

import type { IPFamily } from '../../model/ip.js';

/** The table family nft uses for an IP family. */
export function nftFamily(family: IPFamily): 'ip' | 'ip6' {
  return family === 'IPv4' ? 'ip' : 'ip6';
}

/** The table every operation of a transaction addresses; filled in once, here, not by each caller. */
export interface NftTable {
  readonly family: 'ip' | 'ip6' | 'inet';
  readonly name: string;
}

export interface BaseChainSpec {
  readonly type: 'filter' | 'nat' | 'route';
  readonly hook: 'prerouting' | 'input' | 'forward' | 'output' | 'postrouting';
  readonly priority: number;
}

/** What an operation adds, flushes or deletes. Deletes and flushes name their object; the rest is ignored. */
export type NftObject =
  | { readonly kind: 'table'; readonly comment?: string }
  | { readonly kind: 'chain'; readonly name: string; readonly base?: BaseChainSpec; readonly comment?: string }
  /** One rule appended to `chain`; `rule` is nft rule syntax without the comment. */
  | { readonly kind: 'rule'; readonly chain: string; readonly rule: string; readonly comment?: string }
  | NftSetObject
  /** Elements of one set or map, written as one command (in the order given). */
  | { readonly kind: 'elements'; readonly set: string; readonly elements: readonly NftElement[] };

export interface NftSetObject {
  readonly kind: 'set' | 'map';
  readonly name: string;
  /** `type ipv4_addr`, or a map's `type K : V`; exactly one of type and typeof. */
  readonly type?: string;
  /** `typeof ip daddr . tcp dport : ...`, where a type name would not do. */
  readonly typeof?: string;
  readonly flags?: readonly string[];
  /** Default timeout of elements, e.g. `10800s`. */
  readonly timeout?: string;
  readonly comment?: string;
}

/** A set or map element: its key (`10.96.0.10 . tcp . 80`), a map's value, and a comment. */
export interface NftElement {
  readonly key: string;
  readonly value?: string;
  readonly comment?: string;
}

export type NftVerb = 'add' | 'flush' | 'delete';

export interface NftOp {
  readonly verb: NftVerb;
  readonly object: NftObject;
}

/** One `nft -f -` input: operations on one table, generated afresh on each iteration. */
export interface NftTransaction {
  readonly table: NftTable;
  readonly ops: Iterable<NftOp>;
}

/** nft refuses longer names ("name too long"); the kernel takes 255 characters. */
export const NAME_LENGTH_MAX = 255;
/** nft refuses longer comments ("comment too long, 128 characters maximum allowed"), failing the whole transaction. */
export const COMMENT_LENGTH_MAX = 128;

const add = (object: NftObject): NftOp => ({ verb: 'add', object });
const flush = (object: NftObject): NftOp => ({ verb: 'flush', object });
const del = (object: NftObject): NftOp => ({ verb: 'delete', object });

/** Builders for the operations the backends write, so callers never spell a verb or a kind twice. */
export const nft = {
  addTable: (comment?: string): NftOp => add(comment === undefined ? { kind: 'table' } : { kind: 'table', comment }),
  deleteTable: (): NftOp => del({ kind: 'table' }),
  addChain: (chain: Omit<Extract<NftObject, { kind: 'chain' }>, 'kind'>): NftOp => add({ kind: 'chain', ...chain }),
  flushChain: (name: string): NftOp => flush({ kind: 'chain', name }),
  deleteChain: (name: string): NftOp => del({ kind: 'chain', name }),
  addRule: (chain: string, rule: string, comment?: string): NftOp => add(comment === undefined ? { kind: 'rule', chain, rule } : { kind: 'rule', chain, rule, comment }),
  addSet: (set: NftSetObject): NftOp => add(set),
  flushSet: (kind: 'set' | 'map', name: string): NftOp => flush({ kind, name }),
  deleteSet: (kind: 'set' | 'map', name: string): NftOp => del({ kind, name }),
  addElements: (set: string, elements: readonly NftElement[]): NftOp => add({ kind: 'elements', set, elements }),
  deleteElements: (set: string, elements: readonly NftElement[]): NftOp => del({ kind: 'elements', set, elements }),
};

/** The transaction as `nft -f` reads it: one line per operation, rendered while it streams. */
export function* renderTransaction(tx: NftTransaction): Generator<string> {
  const q = `${tx.table.family} ${tx.table.name}`;
  for (const op of tx.ops) yield `${renderOp(q, op)}\n`;
}

function renderOp(q: string, { verb, object }: NftOp): string {
  switch (object.kind) {
    case 'table':
      return verb === 'add' && object.comment !== undefined ? `add table ${q} { ${comment(object.comment)} ; }` : `${verb} table ${q}`;
    case 'chain': {
      const head = `${verb} chain ${q} ${name(object.name)}`;
      if (verb !== 'add') return head;
      const spec: string[] = [];
      if (object.base !== undefined) spec.push(`type ${object.base.type} hook ${object.base.hook} priority ${object.base.priority} ;`);
      if (object.comment !== undefined) spec.push(`${comment(object.comment)} ;`);
      return spec.length === 0 ? head : `${head} { ${spec.join(' ')} }`;
    }
    case 'rule':
      if (verb !== 'add') throw new Error(`nft: ${verb} rule is not supported (rules are replaced by flushing their chain)`);
      return `add rule ${q} ${name(object.chain)} ${object.rule}${object.comment === undefined ? '' : ` ${comment(object.comment)}`}`;
    case 'set':
    case 'map': {
      const head = `${verb} ${object.kind} ${q} ${name(object.name)}`;
      if (verb !== 'add') return head;
      const spec: string[] = [];
      if (object.type !== undefined) spec.push(`type ${object.type} ;`);
      if (object.typeof !== undefined) spec.push(`typeof ${object.typeof} ;`);
      if (object.flags !== undefined && object.flags.length > 0) spec.push(`flags ${object.flags.join(',')} ;`);
      if (object.timeout !== undefined) spec.push(`timeout ${object.timeout} ;`);
      if (object.comment !== undefined) spec.push(`${comment(object.comment)} ;`);
      return `${head} { ${spec.join(' ')} }`;
    }
    case 'elements': {
      if (verb === 'flush') throw new Error('nft: flush elements is not supported (flush the set)');
      const items = object.elements.map((e) => (verb === 'delete' ? e.key : renderElement(e)));
      return `${verb} element ${q} ${name(object.set)} { ${items.join(', ')} }`;
    }
  }
}

/** `key comment "…" : value`, as nft reads an element. */
export function renderElement(e: NftElement): string {
  let text = e.key;
  if (e.comment !== undefined) text += ` ${comment(e.comment)}`;
  if (e.value !== undefined) text += ` : ${e.value}`;
  return text;
}

function name(text: string): string {
  // Names come from our own hashing and truncation: a longer one is a bug, not input.
  if (text.length > NAME_LENGTH_MAX) throw new Error(`nft: name longer than ${NAME_LENGTH_MAX} characters: ${text}`);
  return text;
}

/**
 * `comment "…"`, cut to what nft accepts: a Service port name can reach 143 characters (namespace and name of 63,
 * a port name of 15), and one over-long comment would fail every sync. Quotes cannot be escaped in nft strings.
 */
export function comment(text: string): string {
  return `comment "${commentText(text)}"`;
}

/** A comment's text as nft will hold it. */
export function commentText(text: string): string {
  const cut = text.length > COMMENT_LENGTH_MAX ? text.slice(0, COMMENT_LENGTH_MAX) : text;
  return cut.replaceAll('"', "'");
}
