/** table → chain → rules, for iptables-save output and iptables-restore payloads alike. */
export type RulesByChain = Map<string, Map<string, string[]>>;

/**
 * Parses iptables text into table → chain → rule specs (without the leading `-A CHAIN `), in text order;
 * declared chains without rules map to []. `-I`/`-D`/`-X` lines of a payload are kept whole under `!ops`.
 */
export function parseRules(text: string): RulesByChain {
  const tables: RulesByChain = new Map();
  let chains: Map<string, string[]> | undefined;
  const push = (key: string, line: string): void => {
    const rules = chains!.get(key) ?? [];
    rules.push(line);
    chains!.set(key, rules);
  };
  for (const raw of text.split('\n')) {
    const line = raw.trimEnd();
    if (line.startsWith('*')) {
      chains = new Map();
      tables.set(line.slice(1), chains);
    } else if (chains === undefined) {
      continue;
    } else if (line.startsWith(':')) {
      const name = line.slice(1).split(' ', 1)[0]!;
      if (!chains.has(name)) chains.set(name, []);
    } else if (line.startsWith('-A ')) {
      const [, chain, ...rest] = line.split(' ');
      push(chain!, rest.join(' '));
    } else if (line.startsWith('-I ') || line.startsWith('-D ') || line.startsWith('-X ')) {
      push('!ops', line);
    }
  }
  return tables;
}
