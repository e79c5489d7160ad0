/** What a node's tables hold now, as far as a full sync needs to know: chain names and rules per table. */
export interface LiveRules {
  readonly chains: ReadonlyMap<string, ReadonlySet<string>>;
  /** Every `-A` line per table, as iptables-save printed it. */
  readonly rules: ReadonlyMap<string, ReadonlySet<string>>;
}

export const EMPTY_LIVE_RULES: LiveRules = { chains: new Map(), rules: new Map() };

/** Parses `iptables-save` output (any tables). Pure: the applier runs the command. */
export function parseIptablesSave(text: string): LiveRules {
  const chains = new Map<string, Set<string>>();
  const rules = new Map<string, Set<string>>();
  let table: string | undefined;
  for (const line of text.split('\n')) {
    if (line.startsWith('*')) {
      table = line.slice(1).trim();
      chains.set(table, chains.get(table) ?? new Set());
      rules.set(table, rules.get(table) ?? new Set());
    } else if (table === undefined) {
      continue;
    } else if (line.startsWith(':')) {
      const name = line.slice(1).split(' ', 1)[0];
      if (name) chains.get(table)!.add(name);
    } else if (line.startsWith('-A ')) {
      rules.get(table)!.add(line.trimEnd());
    }
  }
  return { chains, rules };
}
