// A trace's branches summed up as `switchboard trace` reports them: the verdict of a new connection, the
// endpoints it may reach with their probabilities, whether it is masqueraded, the Service port the rules say it
// hit, and the rules that decided. Pure.
import { joinHostPort } from '../../model/ip.js';
import type { Branch, Packet, RawTrace, ServiceHint, ServiceKind } from './types.js';

export type TraceVerdict = 'dnat' | 'reject' | 'drop' | 'none';

export interface TraceEndpoint {
  readonly ip: string;
  readonly port: number;
  /** The share of the connections that reach an endpoint (they sum to 1). */
  readonly probability: number;
  /** Whether connections to it are source-NATed (a hairpin is, for one endpoint only). */
  readonly masquerade: boolean;
}

/** What `trace -o json` prints; `notes` lists what the interpreter read around (foreign rules, schedulers). */
export interface TraceResult {
  readonly from: string;
  readonly to: string;
  readonly protocol: string;
  readonly service: string | null;
  readonly kind: ServiceKind | null;
  readonly verdict: TraceVerdict;
  readonly masquerade: boolean;
  readonly endpoints: readonly TraceEndpoint[];
  readonly path: readonly string[];
  readonly notes: readonly string[];
}

/**
 * Sums the branches: `dnat` when some reach an endpoint (their shares renormalised over those that do; the
 * others are noted), else the most likely of `reject` and `drop`, else `none` (not a Service address).
 * `fallback` names the Service where the rules do not (IPVS virtual servers carry no comment).
 */
export function summarize(raw: RawTrace, packet: Packet, fallback?: ServiceHint): TraceResult {
  const reached = raw.branches.filter((b) => b.dnat !== undefined && b.verdict === 'accept');
  const reachedShare = sum(reached);
  const rejected = raw.branches.filter((b) => b.verdict === 'reject');
  const dropped = raw.branches.filter((b) => b.verdict === 'drop');
  const notes = [...raw.notes];
  let verdict: TraceVerdict;
  let deciding: readonly Branch[];
  if (reached.length > 0) {
    verdict = 'dnat';
    deciding = reached;
    const untranslated = raw.branches.filter((b) => b.dnat === undefined && b.verdict === 'accept');
    for (const [list, what] of [[rejected, 'rejected'], [dropped, 'dropped'], [untranslated, 'not translated (they go on to the Service address itself)']] as const) {
      if (list.length > 0) notes.push(`${percent(sum(list))} of new connections are ${what} (see the path), the rest reach the endpoints listed`);
    }
  } else if (rejected.length > 0 || dropped.length > 0) {
    verdict = sum(rejected) >= sum(dropped) ? 'reject' : 'drop';
    deciding = verdict === 'reject' ? rejected : dropped;
  } else {
    verdict = 'none';
    deciding = raw.branches;
  }

  const byTarget = new Map<string, { ip: string; port: number; share: number; masquerade: boolean }>();
  for (const b of reached) {
    const key = joinHostPort(b.dnat!.ip, b.dnat!.port);
    const e = byTarget.get(key) ?? { ip: b.dnat!.ip, port: b.dnat!.port, share: 0, masquerade: false };
    e.share += b.probability;
    e.masquerade ||= b.masquerade;
    byTarget.set(key, e);
  }
  const endpoints = [...byTarget.values()].map((e) => ({ ip: e.ip, port: e.port, probability: round(e.share / reachedShare), masquerade: e.masquerade }));

  const hints = deciding.flatMap((b) => b.hints);
  let service = hints.find((h) => h.service !== undefined)?.service ?? null;
  let kind: ServiceKind | 'external' | null = hints.find((h) => h.kind !== undefined && h.kind !== 'external')?.kind ?? hints.find((h) => h.kind !== undefined)?.kind ?? null;
  if (verdict !== 'none') {
    service ??= fallback?.service ?? null;
    if (kind === null || kind === 'external') kind = fallback?.kind !== undefined && fallback.kind !== 'external' ? fallback.kind : kind;
  } else {
    service = null;
    kind = null;
  }
  if (kind === 'external') {
    notes.push('the rules do not tell an external IP from a load-balancer IP here: reported as externalIP');
    kind = 'externalIP';
  }

  return {
    from: packet.src,
    to: joinHostPort(packet.dst, packet.dport),
    protocol: packet.proto,
    service,
    kind,
    verdict,
    masquerade: deciding.some((b) => b.masquerade && (verdict !== 'dnat' || b.dnat !== undefined)),
    endpoints,
    // When some connections reach an endpoint and others do not, the path shows every branch.
    path: mergedPath(verdict === 'dnat' && reached.length !== raw.branches.length ? raw.branches : deciding),
    notes,
  };
}

function sum(branches: readonly Branch[]): number {
  return branches.reduce((n, b) => n + b.probability, 0);
}

function percent(p: number): string {
  return `${(Math.round(p * 1000) / 10).toString()}%`;
}

/** Shares rounded to 12 digits: 0.1 + 0.2 reads 0.3. */
function round(p: number): number {
  return Math.round(p * 1e12) / 1e12;
}

/**
 * One path for all branches: the steps they share, then each branch's own steps, labelled with where it went
 * and its share (`[10.244.1.5:8080 50%] nat KUBE-SEP-…`).
 */
function mergedPath(branches: readonly Branch[]): string[] {
  if (branches.length === 0) return [];
  if (branches.length === 1) return [...branches[0]!.path];
  const first = branches[0]!.path;
  let common = first.length;
  for (const b of branches) {
    let i = 0;
    while (i < common && i < b.path.length && b.path[i] === first[i]) i++;
    common = i;
  }
  const out = first.slice(0, common);
  for (const b of branches) {
    const to = b.dnat === undefined ? undefined : joinHostPort(b.dnat.ip, b.dnat.port);
    const where = to === undefined ? b.verdict : b.verdict === 'accept' ? to : `${to} ${b.verdict}`;
    const label = `[${where} ${percent(b.probability)}]`;
    for (const step of b.path.slice(common)) out.push(`${label} ${step}`);
  }
  return out;
}

/** The exit status of `switchboard trace`: 0 when the connection reaches an endpoint, else 3. */
export function traceExitCode(result: TraceResult): number {
  return result.verdict === 'dnat' ? 0 : 3;
}

/** The human form of a result. */
export function traceText(result: TraceResult, heading: string): string {
  const lines = [heading];
  lines.push(`service     ${result.service === null ? '-' : `${result.service} (${result.kind ?? 'unknown kind'})`}`);
  const verdictWords: Record<TraceVerdict, string> = {
    dnat: 'DNAT: reaches an endpoint',
    reject: 'REJECT: refused at once',
    drop: 'DROP: the client times out',
    none: 'not translated: not a Service address and port here',
  };
  lines.push(`verdict     ${verdictWords[result.verdict]}`);
  if (result.endpoints.length > 0) {
    lines.push('endpoints');
    for (const e of result.endpoints) lines.push(`  ${joinHostPort(e.ip, e.port).padEnd(28)} ${percent(e.probability).padStart(6)}${e.masquerade ? '  masqueraded' : ''}`);
  }
  lines.push(`masquerade  ${result.masquerade ? 'yes' : 'no'}`);
  lines.push('path');
  for (const step of result.path) lines.push(`  ${step}`);
  if (result.path.length === 0) lines.push('  (no rule matched)');
  if (result.notes.length > 0) {
    lines.push('notes');
    for (const n of result.notes) lines.push(`  ${n}`);
  }
  return `${lines.join('\n')}\n`;
}
