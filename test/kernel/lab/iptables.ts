import { runIn } from './run.js';

export type IptablesTable = 'nat' | 'filter' | 'mangle' | 'raw';

/** iptables (ipv4) or ip6tables (ipv6): same table layout, same save/restore format. */
export type IptablesFamily = 'ipv4' | 'ipv6';

const TOOL_PREFIX: Record<IptablesFamily, string> = { ipv4: 'iptables', ipv6: 'ip6tables' };

/** Strips `# ...` header/footer lines and zeroes `[pkts:bytes]` counters so dumps compare equal. */
export function normaliseIptablesSave(dump: string): string {
  return dump
    .split('\n')
    .filter((l) => !l.startsWith('#'))
    .map((l) => l.replace(/\[\d+:\d+\]/g, '[0:0]'))
    .join('\n')
    .trim();
}

export async function iptablesSave(ns: string, table?: IptablesTable, family: IptablesFamily = 'ipv4'): Promise<string> {
  const r = await runIn(ns, `${TOOL_PREFIX[family]}-save`, table === undefined ? [] : ['-t', table]);
  return normaliseIptablesSave(r.stdout);
}

export async function iptablesRestore(
  ns: string,
  rules: string,
  opts: { noflush?: boolean } = {},
  family: IptablesFamily = 'ipv4',
): Promise<void> {
  const args = opts.noflush === false ? [] : ['--noflush'];
  const input = rules.endsWith('\n') ? rules : `${rules}\n`;
  const tool = `${TOOL_PREFIX[family]}-restore`;
  const r = await runIn(ns, tool, args, { input, reject: false });
  if (r.exitCode !== 0) {
    throw new Error(`${tool} in ${ns} failed (exit ${String(r.exitCode)}): ${r.stderr}\n--- input ---\n${input}`);
  }
}

const BUILTIN_CHAINS: Record<IptablesTable, readonly string[]> = {
  filter: ['INPUT', 'FORWARD', 'OUTPUT'],
  nat: ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING'],
  mangle: ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'],
  raw: ['PREROUTING', 'OUTPUT'],
};

/** Rules text that, restored without --noflush (by iptables or ip6tables), empties `tables` and resets policies to ACCEPT. */
export function emptyTablesRules(tables: readonly IptablesTable[] = ['filter', 'nat', 'mangle', 'raw']): string {
  return tables
    .map((t) => [`*${t}`, ...BUILTIN_CHAINS[t].map((c) => `:${c} ACCEPT [0:0]`), 'COMMIT'].join('\n'))
    .join('\n');
}
