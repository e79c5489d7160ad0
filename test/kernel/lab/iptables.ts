import { runIn } from './run.js';

export type IptablesTable = 'nat' | 'filter' | 'mangle' | 'raw';

/** Strips `# ...` header/footer lines and zeroes `[pkts:bytes]` counters so dumps compare equal. */
export function normaliseIptablesSave(dump: string): string {
  return dump
    .split('\n')
    .filter((l) => !l.startsWith('#'))
    .map((l) => l.replace(/\[\d+:\d+\]/g, '[0:0]'))
    .join('\n')
    .trim();
}

export async function iptablesSave(ns: string, table?: IptablesTable): Promise<string> {
  const r = await runIn(ns, 'iptables-save', table === undefined ? [] : ['-t', table]);
  return normaliseIptablesSave(r.stdout);
}

export async function iptablesRestore(ns: string, rules: string, opts: { noflush?: boolean } = {}): Promise<void> {
  const args = opts.noflush === false ? [] : ['--noflush'];
  const input = rules.endsWith('\n') ? rules : `${rules}\n`;
  const r = await runIn(ns, 'iptables-restore', args, { input, reject: false });
  if (r.exitCode !== 0) {
    throw new Error(`iptables-restore in ${ns} failed (exit ${String(r.exitCode)}): ${r.stderr}\n--- input ---\n${input}`);
  }
}

const BUILTIN_CHAINS: Record<IptablesTable, readonly string[]> = {
  filter: ['INPUT', 'FORWARD', 'OUTPUT'],
  nat: ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING'],
  mangle: ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'],
  raw: ['PREROUTING', 'OUTPUT'],
};

/** Rules text that, restored without --noflush, empties `tables` and resets policies to ACCEPT. */
export function emptyTablesRules(tables: readonly IptablesTable[] = ['filter', 'nat', 'mangle', 'raw']): string {
  return tables
    .map((t) => [`*${t}`, ...BUILTIN_CHAINS[t].map((c) => `:${c} ACCEPT [0:0]`), 'COMMIT'].join('\n'))
    .join('\n');
}
