// Reading `iptables-save` output. Pure: kernel/iptables.ts runs the command.

/** What a node's tables hold now, as far as a full sync needs to know. */
export interface LiveRules {
  /** Every chain per table. */
  readonly chains: ReadonlyMap<string, ReadonlySet<string>>;
  /**
   * The `-A` lines of built-in chains per table (where our jumps live), as iptables-save printed them. Rules
   * of other chains are not kept: at 10,000 Services they are 320,000 strings nobody reads.
   */
  readonly rules: ReadonlyMap<string, ReadonlySet<string>>;
  /**
   * The rules of each nat chain the caller asked for (the iptables backend: its per-service chains) as
   * iptables-save printed them (`-A` lines joined by newlines), so a full sync can skip the chains the kernel
   * already holds verbatim. Slices of the dump, not copies.
   */
  readonly serviceChains: ReadonlyMap<string, string>;
}

export const EMPTY_LIVE_RULES: LiveRules = { chains: new Map(), rules: new Map(), serviceChains: new Map() };

/** Never equal to a chain's save form: marks a chain whose rules were not contiguous in the dump. */
const UNCOMPARABLE = '\0';

const BUILTIN_CHAINS: ReadonlySet<string> = new Set(['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING']);

/** Parses `iptables-save` output (any tables), keeping the rules of the nat chains `keepRules` selects. */
export function parseIptablesSave(text: string, keepRules: (chain: string) => boolean = () => false): LiveRules {
  const chains = new Map<string, Set<string>>();
  const rules = new Map<string, Set<string>>();
  const serviceChains = new Map<string, string>();
  let tableChains: Set<string> | undefined;
  let tableRules: Set<string> | undefined;
  let inNat = false;
  /** The per-service chain whose rules are being read, and where its first and last rule lines are. */
  let block: { chain: string; start: number; end: number } | undefined;
  const closeBlock = (): void => {
    if (block === undefined) return;
    // iptables-save prints a chain's rules together; if one shows up twice, do not trust either part.
    serviceChains.set(block.chain, serviceChains.has(block.chain) ? UNCOMPARABLE : text.slice(block.start, block.end));
    block = undefined;
  };
  // Walked with indexOf rather than split: the text can be 30 MB, and only a few lines are kept.
  for (let start = 0; start < text.length; ) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    const first = text.charCodeAt(start);
    if (first === 42 /* '*' */) {
      closeBlock();
      const table = text.slice(start + 1, end).trim();
      inNat = table === 'nat';
      tableChains = chains.get(table) ?? new Set();
      tableRules = rules.get(table) ?? new Set();
      chains.set(table, tableChains);
      rules.set(table, tableRules);
    } else if (tableChains !== undefined && first === 58 /* ':' */) {
      const space = text.indexOf(' ', start);
      const name = text.slice(start + 1, space < 0 || space > end ? end : space);
      if (name !== '') tableChains.add(name);
    } else if (tableRules !== undefined && text.startsWith('-A ', start)) {
      let space = text.indexOf(' ', start + 3);
      if (space < 0 || space > end) space = end;
      const chain = text.slice(start + 3, space);
      if (BUILTIN_CHAINS.has(chain)) tableRules.add(text.slice(start, end).trimEnd());
      if (block !== undefined && block.chain === chain) block.end = end;
      else {
        closeBlock();
        if (inNat && keepRules(chain)) block = { chain, start, end };
      }
    } else closeBlock();
    start = end + 1;
  }
  closeBlock();
  return { chains, rules, serviceChains };
}
