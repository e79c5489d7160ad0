// The rules a trace runs over, per backend, read from what `compile` prints (a full sync's plan: each tool's
// input, one family pipeable or labelled `#### IPv4: tool` sections) or from what the kernel holds (the
// caller reads iptables-save, nft list, ipvsadm -S -n, ipset save). One reader per source, one interpreter
// per backend. Pure.
import type { IPFamily } from '../../model/ip.js';
import { IptablesRuleset } from './iptables-rules.js';
import { traceIptables } from './iptables.js';
import { Ipsets } from './ipsets.js';
import { type IpvsRules, ipvsTableOf, traceIpvs } from './ipvs.js';
import { NftRuleset, type NftTableModel } from './nft-rules.js';
import { traceNftables } from './nftables.js';
import { type RawTrace, TraceInputError, type TraceRequest } from './types.js';

/** One backend's rules for one family, and the addresses they bind to the node (IPVS: kube-ipvs0's). */
export type TraceRules =
  | { readonly backend: 'iptables'; readonly family: IPFamily; readonly rules: IptablesRuleset; readonly ipsets: Ipsets; readonly source: string }
  | { readonly backend: 'nftables'; readonly family: IPFamily; readonly ruleset: NftRuleset; readonly source: string }
  | { readonly backend: 'ipvs'; readonly family: IPFamily; readonly rules: IpvsRules; readonly boundAddresses: readonly string[]; readonly source: string };

/** The table name nftables mode uses, in `ip` and `ip6`. */
export const NFT_TABLE = 'kube-proxy';

/** A section of a printed plan: the tool's label (`iptables-restore --noflush`), its family heading, its input. */
export interface PlanSection {
  readonly family: IPFamily | undefined;
  readonly label: string | undefined;
  readonly text: string;
}

/**
 * Splits `compile` output into its tools' inputs. Labelled (`#### [IPv4: ]LABEL` before each), or pipeable: the
 * last tool's input, with any earlier step's input commented out under `# LABEL, before TOOL:` (label undefined
 * for the main body).
 */
export function splitPrintedPlan(text: string): PlanSection[] {
  const lines = text.split('\n');
  const out: PlanSection[] = [];
  if (lines.some((l) => l.startsWith('#### '))) {
    let current: { family: IPFamily | undefined; label: string; lines: string[] } | undefined;
    const flush = (): void => {
      if (current !== undefined) out.push({ family: current.family, label: current.label, text: current.lines.join('\n') });
    };
    for (const line of lines) {
      const m = /^#### (?:(IPv4|IPv6): )?(.*)$/.exec(line);
      if (m !== null) {
        flush();
        current = { family: m[1] as IPFamily | undefined, label: m[2]!, lines: [] };
      } else if (current !== undefined) current.lines.push(line);
      else if (line.trim() !== '') throw new TraceInputError(`plan text before its first #### section: "${line}"`);
    }
    flush();
    return out;
  }
  const body: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const m = /^# (.+), before \S+:$/.exec(lines[i]!);
    if (m === null) {
      body.push(lines[i]!);
      continue;
    }
    const inner: string[] = [];
    while (i + 1 < lines.length && lines[i + 1]!.startsWith('# ')) inner.push(lines[++i]!.slice(2));
    out.push({ family: undefined, label: m[1]!, text: inner.join('\n') });
  }
  out.push({ family: undefined, label: undefined, text: body.join('\n') });
  return out;
}

/** What `backend` compiled for `family`, read from printed plan sections (see splitPrintedPlan). */
export function rulesFromPlan(sections: readonly PlanSection[], backend: TraceRules['backend'], family: IPFamily, source: string): TraceRules {
  const mine = sections.filter((s) => s.family === undefined || s.family === family);
  const tool = (s: PlanSection): string => s.label?.split(' ', 1)[0] ?? (backend === 'nftables' ? 'nft' : family === 'IPv4' ? 'iptables-restore' : 'ip6tables-restore');
  const where = (s: PlanSection): string => `${source} (${s.family === undefined ? '' : `${s.family}: `}${s.label ?? tool(s)})`;
  const of = (name: string): PlanSection[] => mine.filter((s) => tool(s) === name);
  switch (backend) {
    case 'iptables':
    case 'ipvs': {
      const restore = family === 'IPv4' ? 'iptables-restore' : 'ip6tables-restore';
      const rules = new IptablesRuleset();
      for (const s of of(restore)) rules.apply(s.text, where(s));
      const ipsets = new Ipsets();
      for (const s of of('ipset')) ipsets.apply(s.text, where(s));
      if (backend === 'iptables') return { backend, family, rules, ipsets, source };
      const ipvsadm = of('ipvsadm').map((s) => ipvsTableOf(s.text, where(s)));
      const table = ipvsadm.length === 0 ? ipvsTableOf('', source) : ipvsadm.length === 1 ? ipvsadm[0]! : mergeTables(ipvsadm);
      const boundAddresses = of('ip').flatMap((s) => [...s.text.matchAll(/^address add (\S+?)(?:\/\d+)? dev \S+/gm)].map((m) => m[1]!));
      return { backend, family, rules: { table, iptables: rules, ipsets }, boundAddresses, source };
    }
    case 'nftables': {
      const ruleset = new NftRuleset();
      for (const s of of('nft')) ruleset.applyScript(s.text, where(s));
      return { backend, family, ruleset, source };
    }
  }
}

function mergeTables(tables: readonly ReturnType<typeof ipvsTableOf>[]): ReturnType<typeof ipvsTableOf> {
  const virtualServers = new Map(tables.flatMap((t) => [...t.virtualServers]));
  const realServers = new Map(tables.flatMap((t) => [...t.realServers]));
  return { virtualServers, realServers };
}

/** The nftables table a family's Services live in; an empty one when the ruleset has none. */
export function nftTableOf(ruleset: NftRuleset, family: IPFamily): NftTableModel {
  const fam = family === 'IPv4' ? 'ip' : 'ip6';
  return ruleset.get(fam, NFT_TABLE) ?? { family: fam, name: NFT_TABLE, chains: new Map(), sets: new Map() };
}

/** Runs the backend's interpreter; the rules' own addresses (IPVS) join the node's. */
export function traceRules(rules: TraceRules, req: TraceRequest): RawTrace {
  switch (rules.backend) {
    case 'iptables':
      return traceIptables(rules.rules, req, { ipsets: rules.ipsets, source: rules.source });
    case 'nftables': {
      const table = nftTableOf(rules.ruleset, rules.family);
      const raw = traceNftables(table, req, rules.source);
      if (table.chains.size > 0) return raw;
      return { ...raw, notes: [...raw.notes, `no table ${table.family} ${table.name}: nothing of the nftables backend is there`] };
    }
    case 'ipvs':
      return traceIpvs(rules.rules, { ...req, localAddresses: [...req.localAddresses, ...rules.boundAddresses] }, rules.source);
  }
}
