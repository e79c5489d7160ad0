/** What a node's tables hold now, as far as a full sync needs to know. */
export interface LiveRules {
  /** Every chain per table. */
  readonly chains: ReadonlyMap<string, ReadonlySet<string>>;
  /**
   * The `-A` lines of built-in chains per table (where our jumps live), as iptables-save printed them. Rules
   * of other chains are not kept: at 10,000 Services they are 320,000 strings nobody reads.
   */
  readonly rules: ReadonlyMap<string, ReadonlySet<string>>;
}

export const EMPTY_LIVE_RULES: LiveRules = { chains: new Map(), rules: new Map() };

const BUILTIN_CHAINS: ReadonlySet<string> = new Set(['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING']);

/** Parses `iptables-save` output (any tables). Pure: the applier runs the command. */
export function parseIptablesSave(text: string): LiveRules {
  const chains = new Map<string, Set<string>>();
  const rules = new Map<string, Set<string>>();
  let tableChains: Set<string> | undefined;
  let tableRules: Set<string> | undefined;
  // Walked with indexOf rather than split: the text can be 30 MB, and only a few lines are kept.
  for (let start = 0; start < text.length; ) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    const first = text.charCodeAt(start);
    if (first === 42 /* '*' */) {
      const table = text.slice(start + 1, end).trim();
      tableChains = chains.get(table) ?? new Set();
      tableRules = rules.get(table) ?? new Set();
      chains.set(table, tableChains);
      rules.set(table, tableRules);
    } else if (tableChains !== undefined && first === 58 /* ':' */) {
      const space = text.indexOf(' ', start);
      const name = text.slice(start + 1, space < 0 || space > end ? end : space);
      if (name !== '') tableChains.add(name);
    } else if (tableRules !== undefined && text.startsWith('-A ', start)) {
      const space = text.indexOf(' ', start + 3);
      if (space > 0 && space < end && BUILTIN_CHAINS.has(text.slice(start + 3, space))) {
        tableRules.add(text.slice(start, end).trimEnd());
      }
    }
    start = end + 1;
  }
  return { chains, rules };
}
