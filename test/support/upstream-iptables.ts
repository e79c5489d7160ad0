// Upstream's iptables expectations (pkg/proxy/iptables/proxier_test.go) compared as upstream compares them, less
// the deliberate differences docs/backends/iptables.md lists. Test support only.

/**
 * Restore text in upstream's comparison form (assertIPTablesRulesEqual sorts): per table, chain declarations
 * sorted, then each chain's rules. Rules of the chains Services share are ordered by Service, in each Service's
 * own order, the NodePorts jump last, since their order across Services is Go map order upstream.
 */
export function comparable(text: string): string {
  const out: string[] = [];
  let table = '';
  let chains: string[] = [];
  let rules = new Map<string, string[]>();
  const flush = () => {
    if (table === '') return;
    out.push(`*${table}`, ...chains.sort());
    for (const chain of [...rules.keys()].sort()) {
      const list = rules.get(chain)!;
      const owner = (r: string) => (r.includes('NOTE: this must be the last') ? '~' : (/--comment "?(?:other traffic to )?([^ :"]+)/.exec(r)?.[1] ?? ''));
      out.push(...list.map((r, i) => [owner(r), i, r] as const).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] - b[1])).map((x) => x[2]));
    }
    out.push('COMMIT');
  };
  for (const line of text.split('\n')) {
    if (line.startsWith('*')) {
      flush();
      table = line.slice(1);
      chains = [];
      rules = new Map();
    } else if (line.startsWith(':')) chains.push(line);
    else if (line.startsWith('-A ')) {
      const chain = line.split(' ')[1]!;
      rules.set(chain, [...(rules.get(chain) ?? []), line]);
    }
  }
  flush();
  return out.join('\n');
}

/** Ours and upstream's text in comparable form, without the deliberate differences (docs/backends/iptables.md). */
export function bothComparable(ours: string, expected: string): [string, string] {
  // Ours: a canary chain per table, jumps from built-in chains in the same input (upstream: separate calls),
  // and MASQUERADE --random-fully (upstream's fake iptables lacks it). Upstream: nfacct counters, not kept here.
  const mine = ours
    .split('\n')
    .filter((l) => !l.includes('KUBE-PROXY-CANARY') && !l.startsWith('-I ') && l !== '*mangle')
    .map((l) => l.replace(' --random-fully', ''))
    .join('\n');
  const theirs = expected
    .split('\n')
    .filter((l) => !l.includes('--nfacct-name localhost_nps_accepted_pkts'))
    .map((l) => l.replace(' -m nfacct --nfacct-name ct_state_invalid_dropped_pkts', ''))
    .join('\n');
  return [comparable(mine), comparable(theirs)];
}
