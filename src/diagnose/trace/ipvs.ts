// The IPVS interpreter: IPVS mode as the kernel runs it for a new connection. iptables first (the iptables
// interpreter, with IPVS mode's ipsets): nat PREROUTING or OUTPUT marks for masquerading and accepts; a
// packet to a node address (the Service addresses are bound to kube-ipvs0) goes through filter INPUT (REJECT of
// unserved ports, the IPVS access filter, source ranges); then the virtual server of its address, protocol and
// port picks a real server, by weight (rr and wrr exactly; the other schedulers in the long run), and the
// translated packet goes out through filter OUTPUT and nat POSTROUTING (masquerade by mark or KUBE-LOOP-BACK).
// A connection of the node itself meets IPVS right after nat OUTPUT. It reads `ipvsadm -S -n` (or the
// `ipvsadm -R` input `compile` prints), the sets and the rules, nothing else. Pure.
import { type IpvsTable, type RealServer, type VirtualServer, parseIpvsadmSave, virtualServerKey } from '../../backends/ipvs/ipvsadm.js';
import { parseIP } from '../../model/ip.js';
import { IptablesInterpreter } from './iptables.js';
import type { IptablesRuleset } from './iptables-rules.js';
import type { Ipsets } from './ipsets.js';
import { AFFINITY_NOTE, type Branch, LocalAddresses, type RawTrace, type ServiceHint, TraceInputError, type TraceRequest, splitHostPort } from './types.js';
import { type World, finish, initialWorld, possible, stepped, withDnat } from './world.js';

/** What IPVS mode holds: the IPVS table, the iptables rules and the ipsets they match. */
export interface IpvsRules {
  readonly table: IpvsTable;
  readonly iptables: IptablesRuleset;
  readonly ipsets: Ipsets;
}

/** Reads `ipvsadm -S -n` output or `ipvsadm -R` input; throws TraceInputError. */
export function ipvsTableOf(text: string, source: string): IpvsTable {
  try {
    return parseIpvsadmSave(text);
  } catch (e) {
    throw new TraceInputError(`${source}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** Schedulers whose share of new connections is exactly the weight's. */
const WEIGHTED = new Set(['rr', 'wrr']);

/** Sets whose members say what kind of address a virtual server is on (kube-proxy's names). */
const KIND_SETS: ReadonlyArray<readonly [string, ServiceHint['kind']]> = [
  ['KUBE-CLUSTER-IP', 'clusterIP'],
  ['KUBE-EXTERNAL-IP', 'externalIP'],
  ['KUBE-EXTERNAL-IP-LOCAL', 'externalIP'],
  ['KUBE-LOAD-BALANCER', 'loadBalancer'],
];

export function traceIpvs(rules: IpvsRules, req: TraceRequest, source: string): RawTrace {
  const local = new LocalAddresses(req.localAddresses);
  const it = new IptablesInterpreter(rules.iptables, local, { ipsets: rules.ipsets, source });
  const notes: string[] = [];
  const family = parseIP(req.packet.dst)?.family ?? 'IPv4';
  const done: Branch[] = [];
  const hook = (table: string, chain: string, ws: readonly World[]): World[] => {
    const { on, stopped } = it.runHook(table, chain, ws);
    done.push(...stopped);
    return on;
  };

  /** IPVS: worlds it schedules (translated, one per real server), and those it leaves alone. */
  const schedule = (ws: readonly World[]): { handled: World[]; passed: World[] } => {
    const handled: World[] = [];
    const passed: World[] = [];
    for (const w of ws) {
      const p = w.packet;
      const vs = local.has(p.dst) ? rules.table.virtualServers.get(virtualServerKey(p.proto, p.dst, p.dport)) : undefined;
      if (vs === undefined) {
        passed.push(w);
        continue;
      }
      const reals = [...(rules.table.realServers.get(vs.key)?.values() ?? [])];
      const usable = reals.filter((r) => r.weight > 0);
      const total = usable.reduce((n, r) => n + r.weight, 0);
      const head = `ipvs: -A ${vs.key} -s ${vs.scheduler}${vs.persistenceSeconds === undefined ? '' : ` -p ${vs.persistenceSeconds}`}`;
      const hinted = stepped(w, head, kindHint(rules.ipsets, vs, local, source));
      if (total === 0) {
        // No destination to schedule to: IPVS answers ICMP port unreachable.
        done.push(finish(stepped(hinted, `ipvs: ${vs.key} has no real server with a weight above 0`), 'reject'));
        continue;
      }
      if (!WEIGHTED.has(vs.scheduler)) note(notes, `scheduler ${vs.scheduler} of ${vs.key}: shares are by weight, as it tends to over many connections`);
      if (vs.persistenceSeconds !== undefined) note(notes, `${AFFINITY_NOTE} (${vs.key} is persistent, ${vs.persistenceSeconds} s)`);
      for (const r of usable) {
        const share = w.probability * (r.weight / total);
        if (!possible(share)) continue;
        handled.push(scheduled(hinted, vs, r, share, total, source));
      }
    }
    return { handled, passed };
  };

  let worlds: World[] = [initialWorld(req.packet)];
  if (req.entry === 'local') {
    worlds = hook('nat', 'OUTPUT', worlds);
    const { handled, passed } = schedule(worlds);
    worlds = hook('nat', 'POSTROUTING', hook('filter', 'OUTPUT', [...handled, ...passed]));
  } else {
    worlds = hook('nat', 'PREROUTING', worlds);
    const delivered = hook('filter', 'INPUT', worlds.filter((w) => local.has(w.packet.dst)));
    const forwarded = worlds.filter((w) => !local.has(w.packet.dst));
    const { handled, passed } = schedule(delivered);
    worlds = [...passed, ...hook('nat', 'POSTROUTING', hook('filter', 'OUTPUT', handled)), ...hook('nat', 'POSTROUTING', hook('filter', 'FORWARD', forwarded))];
  }
  for (const w of worlds) done.push(finish(w, 'accept'));
  return { family, branches: done, notes: [...it.notes, ...notes] };
}

function note(notes: string[], text: string): void {
  if (!notes.includes(text)) notes.push(text);
}

function scheduled(w: World, vs: VirtualServer, r: RealServer, probability: number, total: number, source: string): World {
  const hp = splitHostPort(r.hostPort);
  if (hp?.port === undefined) throw new TraceInputError(`${source}: real server "${r.hostPort}" of ${vs.key} is not an address and port`);
  const to = stepped({ ...w, probability }, `ipvs: -a ${vs.key} -r ${r.hostPort} -w ${r.weight} (${r.weight} of ${total})`);
  return { ...withDnat(to, { ip: hp.ip, port: hp.port }), ipvs: { vaddr: vs.address, vport: vs.port, vproto: vs.protocol } };
}

/** The kind of address a virtual server is on, from the sets IPVS mode keeps (a node address: a NodePort). */
function kindHint(sets: Ipsets, vs: VirtualServer, local: LocalAddresses, source: string): ServiceHint | undefined {
  const p = { src: vs.address, dst: vs.address, dport: vs.port, proto: vs.protocol };
  for (const [set, kind] of KIND_SETS) {
    if (sets.sets.has(set) && sets.matches(set, 'dst,dst', p, source) && kind !== undefined) return { kind };
  }
  const bound = sets.sets.get('KUBE-IPVS-IPS');
  if (local.has(vs.address) && (bound === undefined || !bound.members.has(vs.address))) return { kind: 'nodePort' };
  return undefined;
}
