// The text of `iptables-restore --noflush` input, written in one place: tables and their COMMITs, chain
// declarations, -A/-I/-D/-X lines, and the grouping of large changes into several transactions. Callers
// generate lines lazily (a full sync at 10,000 Services is 31 MB); these helpers never hold more than a group.
// After kube-proxy's LineBuffer (pkg/proxy/util/linebuffer.go). Pure.

/** Declares a chain: creates it, or (under --noflush) flushes it, so its rules are exactly those that follow. */
export const declareChain = (chain: string): string => `:${chain} - [0:0]\n`;
export const appendRule = (chain: string, spec: string): string => `-A ${chain} ${spec}\n`;
/** Inserted first in the chain (rules another agent appends stay after it). */
export const insertRule = (chain: string, spec: string): string => `-I ${chain} 1 ${spec}\n`;
/** Deletes the first rule of `chain` equal to `spec`; the transaction fails if there is none. */
export const deleteRule = (chain: string, spec: string): string => `-D ${chain} ${spec}\n`;
/** Deletes a chain, which must be empty and unreferenced by then. */
export const deleteChain = (chain: string): string => `-X ${chain}\n`;

/** One table's transaction: `*table`, the lines, `COMMIT`. iptables-restore applies each COMMIT whole or not at all. */
export function* transaction(table: string, ...parts: Iterable<string>[]): Generator<string> {
  yield `*${table}\n`;
  for (const part of parts) yield* part;
  yield 'COMMIT\n';
}

/**
 * `units` in groups that each declare at most about `limit` chains, a unit never split (a Service's chains go in
 * one transaction, so its dispatch rule never points at a half-written chain); `chains` counts a unit's chains.
 * Groups are yielded as they fill, so at most one group is held.
 */
export function* groupedByChains<T>(units: Iterable<T>, chains: (unit: T) => number, limit: number): Generator<T[]> {
  let group: T[] = [];
  let count = 0;
  for (const unit of units) {
    const n = chains(unit);
    if (n === 0) continue;
    group.push(unit);
    count += n;
    if (count >= limit) {
      yield group;
      group = [];
      count = 0;
    }
  }
  if (group.length > 0) yield group;
}

/** `items` in slices of at most `limit`. */
export function* slices<T>(items: readonly T[], limit: number): Generator<readonly T[]> {
  for (let i = 0; i < items.length; i += limit) yield items.slice(i, i + limit);
}
