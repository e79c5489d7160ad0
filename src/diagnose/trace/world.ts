// One way a traced connection is going, while the interpreter walks the rules: the packet as it is now (after
// any DNAT), its mark, and what has happened to it. A random match (iptables statistic, nft numgen, an IPVS
// scheduler) splits a world into several, each with its share of the probability. Pure.
import type { Branch, HostPort, Packet, ServiceHint } from './types.js';

export interface World {
  readonly probability: number;
  /** The packet as the rules see it now: its destination is rewritten by DNAT. */
  readonly packet: Packet;
  readonly original: Packet;
  readonly dnat: HostPort | undefined;
  readonly mark: number;
  readonly masquerade: boolean;
  /** The virtual server IPVS gave the connection to, for `-m ipvs`. */
  readonly ipvs: { readonly vaddr: string; readonly vport: number; readonly vproto: string } | undefined;
  readonly path: readonly string[];
  readonly hints: readonly ServiceHint[];
  /** The filter rule that accepted the packet explicitly, if one did. */
  readonly acceptedBy: string | undefined;
}

export function initialWorld(packet: Packet): World {
  return { probability: 1, packet, original: packet, dnat: undefined, mark: 0, masquerade: false, ipvs: undefined, path: [], hints: [], acceptedBy: undefined };
}

/** The world with `step` appended to its path (and a hint, if any). */
export function stepped(w: World, step: string, hint?: ServiceHint): World {
  return { ...w, path: [...w.path, step], hints: hint === undefined ? w.hints : [...w.hints, hint] };
}

export function withDnat(w: World, to: HostPort): World {
  return { ...w, dnat: to, packet: { ...w.packet, dst: to.ip, dport: to.port } };
}

/** A finished world as the interpreters report it. */
export function finish(w: World, verdict: Branch['verdict']): Branch {
  return { probability: w.probability, dnat: w.dnat, verdict, acceptedBy: w.acceptedBy, masquerade: w.masquerade, path: w.path, hints: w.hints };
}

/** Whether a probability is still worth following (a chain of splits never reaches exactly 0). */
export const possible = (p: number): boolean => p > 1e-12;
