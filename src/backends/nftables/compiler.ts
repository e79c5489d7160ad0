import { viewService } from '../../model/service-view.js';
import type { ClusterState } from '../../model/state.js';
import type { ServiceKey } from '../../model/types.js';
import { FragmentLedger } from '../shared/fragment-ledger.js';
import { type HairpinKey, HairpinMembers, hairpinParts } from '../shared/hairpin-members.js';
import { type Element, type FragmentItem, type LoadBalancer, type NftFragment, expandItems, hairpinElement, renderNftFragment } from './fragment.js';
import { isLoadBalancerChain, isPerServiceObject } from './names.js';
import { type NftOp, nft } from '../../kernel/syntax/nft.js';
import { type NftablesOptions, familySyntax, nodePortIPs, primaryNodeIP } from './options.js';
import { HAIRPIN, NODEPORT_IPS, chainHeader, fixedChainNames, legacyCleanup, loadBalancerRules, skeleton } from './fixed-chains.js';

/** The chains and sets our table holds, as `nft list` shows them; empty when there is no table. */
export interface LiveTable {
  readonly chains: readonly string[];
  readonly sets: readonly string[];
}

export const NO_TABLE: LiveTable = { chains: [], sets: [] };

/** One `nft -f` transaction, and what to remember once the kernel has taken it. */
export interface NftSyncPlan {
  readonly kind: 'full' | 'partial';
  /** The operations, generated afresh on each iteration (a full sync at 10,000 Services is tens of MB of input). */
  readonly ops: Iterable<NftOp>;
  /** Chains and sets this transaction deletes (emptied by an earlier one). */
  readonly deleted: number;
  commit(): void;
  abort(): void;
}

/** Elements per `add element` command of the hairpin set in a full sync. */
const ELEMENTS_PER_COMMAND = 1000;

/**
 * The incremental nftables compiler: pure (no I/O, no clock), stateful only in its caches. It keeps one
 * fragment per Service and what the kernel holds (applied fragments, hairpin members, load-balancing chains,
 * chains and sets awaiting deletion), so a partial sync writes only changed elements and chains.
 *
 * Chains and sets that fall out of use are emptied at once and deleted by a later transaction: kernels before
 * 6.2 may still count a reference from a map element deleted in the same transaction (upstream does the same).
 */
export class NftablesCompiler {
  private readonly ledger = new FragmentLedger<NftFragment>();
  private readonly hairpin: HairpinMembers;
  /** Load-balancing chains by name, with how many wanted service ports jump to each. */
  private readonly loadBalancers = new Map<string, { readonly lb: LoadBalancer; refs: number }>();
  /** Load-balancing chains the kernel holds. */
  private heldLoadBalancers = new Set<string>();
  /** Emptied, unreferenced chains and sets the kernel still holds: the next transaction deletes them. */
  private staleChains = new Set<string>();
  private staleSets = new Set<string>();
  /** The nodeport-ips members the node's IPs call for (none in `all` mode), and those the kernel holds. */
  private nodePortIPs: readonly string[] = [];
  private heldNodePortIPs: readonly string[] = [];
  constructor(readonly options: NftablesOptions) {
    this.hairpin = new HairpinMembers();
  }

  update(state: ClusterState, changed: Iterable<ServiceKey>): void {
    // The node's IPs: the nodeport-ips members, and the firewall's node IP (a change marks every Service changed).
    this.nodePortIPs = nodePortIPs(this.options, state.node.ips) ?? [];
    const nodeIP = primaryNodeIP(this.options.family, state.node.ips);
    for (const key of new Set(changed)) {
      const view = viewService(state, key, this.options.family);
      const after = view === undefined ? undefined : renderNftFragment(view, this.options, nodeIP);
      const before = this.ledger.set(key, after);
      this.hairpin.replace(before?.hairpin, after?.hairpin);
      for (const lb of before?.loadBalancers ?? []) {
        const entry = this.loadBalancers.get(lb.name)!;
        if (--entry.refs === 0) this.loadBalancers.delete(lb.name);
      }
      for (const lb of after?.loadBalancers ?? []) {
        const entry = this.loadBalancers.get(lb.name);
        if (entry === undefined) this.loadBalancers.set(lb.name, { lb, refs: 1 });
        else entry.refs++;
      }
    }
  }

  /**
   * Everything, over whatever the kernel holds (`live`): fixed chains rewritten, managed sets emptied and
   * refilled, every chain written; chains and sets of ours that nothing wants are emptied for deletion.
   */
  planFull(live: LiveTable = NO_TABLE): NftSyncPlan {
    const { take: ordered, commit, abort } = this.ledger.takeFull();
    const lbs = [...this.loadBalancers.values()].map((e) => e.lb).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const wantedChains = new Set<string>([...fixedChainNames(this.options), ...lbs.map((lb) => lb.name)]);
    const wantedSets = new Set<string>();
    for (const f of ordered) {
      for (const name of f.chains.keys()) wantedChains.add(name);
      for (const name of f.sets.keys()) wantedSets.add(name);
    }
    // Ours but unwanted: delete what an earlier transaction emptied, empty the rest (deleted next time).
    const ours = (name: string): boolean => isPerServiceObject(name) || isLoadBalancerChain(name);
    const deleteChains = live.chains.filter((c) => ours(c) && !wantedChains.has(c) && this.staleChains.has(c));
    const emptyChains = live.chains.filter((c) => ours(c) && !wantedChains.has(c) && !this.staleChains.has(c));
    const deleteSets = live.sets.filter((s) => ours(s) && !wantedSets.has(s) && this.staleSets.has(s));
    const retireSets = live.sets.filter((s) => ours(s) && !wantedSets.has(s) && !this.staleSets.has(s));
    const hairpin = this.hairpin.fullMembers();
    const options = this.options;
    const nodePorts = this.nodePortIPs;
    function* generate(): Generator<NftOp> {
      yield* skeleton(options);
      if (nodePorts.length > 0) yield nft.addElements(NODEPORT_IPS, nodePorts.map((key) => ({ key })));
      for (const c of emptyChains) yield nft.flushChain(c);
      for (const c of deleteChains) yield nft.deleteChain(c);
      for (const s of deleteSets) yield nft.deleteSet('set', s);
      for (const lb of lbs) yield* loadBalancerChainOps(options, lb);
      for (const f of ordered) {
        yield* serviceObjectOps(options, f, undefined);
        yield* elementOps('add', [...expandItems(f.elements)]);
      }
      for (let i = 0; i < hairpin.members.length; i += ELEMENTS_PER_COMMAND) {
        const batch = hairpin.members.slice(i, i + ELEMENTS_PER_COMMAND).map((k) => ({ key: hairpinElement(hairpinParts(k)) }));
        yield nft.addElements(HAIRPIN, batch);
      }
      yield* legacyCleanup(options);
    }
    return {
      kind: 'full',
      ops: { [Symbol.iterator]: generate },
      deleted: deleteChains.length + deleteSets.length,
      commit: () => {
        commit();
        hairpin.commit();
        this.heldNodePortIPs = nodePorts;
        this.heldLoadBalancers = new Set(lbs.map((lb) => lb.name));
        this.staleChains = new Set(emptyChains);
        this.staleSets = new Set(retireSets);
      },
      abort,
    };
  }

  /** Only what changed since the last committed plan; undefined when nothing did. */
  planPartial(): NftSyncPlan | undefined {
    const { take: changes, commit: commitLedger, abort } = this.ledger.takePartial();
    const lines: NftOp[] = [];
    const wantedObject = (name: string): boolean =>
      this.loadBalancers.has(name) || changes.some(({ after }) => after?.chains.has(name) === true || after?.sets.has(name) === true);
    // 1. What earlier transactions emptied, unless wanted again.
    const deleteChains = [...this.staleChains].filter((c) => !wantedObject(c));
    const deleteSets = [...this.staleSets].filter((s) => !wantedObject(s));
    for (const c of deleteChains) lines.push(nft.deleteChain(c));
    for (const s of deleteSets) lines.push(nft.deleteSet('set', s));
    // 2. Load-balancing chains before the elements that jump to them.
    const newLoadBalancers: string[] = [];
    for (const { lb } of this.loadBalancers.values()) {
      if (this.heldLoadBalancers.has(lb.name)) continue;
      newLoadBalancers.push(lb.name);
      lines.push(...loadBalancerChainOps(this.options, lb));
    }
    // 3. Per Service: its chains and sets, then its elements (deletions first, so a changed value is re-added).
    const emptied: string[] = [];
    const unsetSets: string[] = [];
    const touched: HairpinKey[] = [];
    const adds: Element[] = [];
    const dels: Element[] = [];
    for (const { before, after } of changes) {
      if (before === after) continue;
      if (after !== undefined) lines.push(...serviceObjectOps(this.options, after, before));
      for (const name of before?.chains.keys() ?? []) if (!after?.chains.has(name)) emptied.push(name);
      for (const name of before?.sets.keys() ?? []) if (!after?.sets.has(name)) unsetSets.push(name);
      diffElements(before?.elements ?? [], after?.elements ?? [], adds, dels);
      touched.push(...(before?.hairpin ?? []), ...(after?.hairpin ?? []));
    }
    lines.push(...elementOps('delete', dels));
    lines.push(...elementOps('add', adds));
    for (const c of emptied) lines.push(nft.flushChain(c));
    const hairpin = this.hairpin.partialChanges(touched);
    if (hairpin !== undefined) {
      const elements = (ks: readonly HairpinKey[]) => ks.map((k) => ({ key: hairpinElement(hairpinParts(k)) }));
      if (hairpin.dels.length > 0) lines.push(nft.deleteElements(HAIRPIN, elements(hairpin.dels)));
      if (hairpin.adds.length > 0) lines.push(nft.addElements(HAIRPIN, elements(hairpin.adds)));
    }
    // The node's NodePort addresses.
    const nodePorts = this.nodePortIPs;
    const goneNodePortIPs = this.heldNodePortIPs.filter((ip) => !nodePorts.includes(ip));
    const newNodePortIPs = nodePorts.filter((ip) => !this.heldNodePortIPs.includes(ip));
    if (goneNodePortIPs.length > 0) lines.push(nft.deleteElements(NODEPORT_IPS, goneNodePortIPs.map((key) => ({ key }))));
    if (newNodePortIPs.length > 0) lines.push(nft.addElements(NODEPORT_IPS, newNodePortIPs.map((key) => ({ key }))));
    // Load-balancing chains no port jumps to any more: unreferenced once this commits, deleted next time.
    const unusedLoadBalancers = [...this.heldLoadBalancers].filter((name) => !this.loadBalancers.has(name) && !deleteChains.includes(name));
    const commit = (): void => {
      commitLedger();
      hairpin?.commit();
      this.heldNodePortIPs = nodePorts;
      for (const name of newLoadBalancers) this.heldLoadBalancers.add(name);
      for (const c of deleteChains) this.heldLoadBalancers.delete(c);
      // Deleted now, or in use again (rewritten above, or a load-balancing chain jumped to again).
      this.staleChains = new Set([...this.staleChains].filter((c) => !deleteChains.includes(c) && !wantedObject(c)));
      this.staleSets = new Set([...this.staleSets].filter((s) => !deleteSets.includes(s) && !wantedObject(s)));
      for (const c of [...emptied, ...unusedLoadBalancers]) this.staleChains.add(c);
      for (const s of unsetSets) this.staleSets.add(s);
    };
    if (lines.length === 0) {
      // Nothing for the kernel; a load-balancing chain that fell out of use is still remembered as stale.
      commit();
      return undefined;
    }
    return {
      kind: 'partial',
      ops: lines,
      deleted: deleteChains.length + deleteSets.length,
      commit,
      abort,
    };
  }

  get serviceCount(): number {
    return this.ledger.size;
  }
}

function* loadBalancerChainOps(options: NftablesOptions, lb: LoadBalancer): Generator<NftOp> {
  yield* chainHeader({ name: lb.name });
  for (const rule of loadBalancerRules(options, lb.kind, lb.protocol, lb.count)) yield nft.addRule(lb.name, rule);
}

/** A Service's sets (declared, never flushed: they hold learned affinity) and its changed chains, rewritten. */
function* serviceObjectOps(options: NftablesOptions, after: NftFragment, before: NftFragment | undefined): Generator<NftOp> {
  const { addrType } = familySyntax(options.family);
  for (const [name, seconds] of after.sets) {
    if (before?.sets.get(name) !== seconds) yield nft.addSet({ kind: 'set', name, type: addrType, flags: ['dynamic', 'timeout'], timeout: `${seconds}s` });
  }
  // In the fragment's order: endpoint chains before the service chain whose rules jump to them.
  for (const [name, rules] of after.chains) {
    if (before?.chains.get(name) === rules) continue;
    yield* chainHeader({ name });
    for (const rule of rules.split('\n')) yield nft.addRule(name, rule);
  }
}

/** One operation per set and run of elements, in the order given. */
function elementOps(verb: 'add' | 'delete', elements: readonly Element[]): NftOp[] {
  const out: NftOp[] = [];
  let i = 0;
  while (i < elements.length) {
    const set = elements[i]!.set;
    const start = i;
    while (i < elements.length && elements[i]!.set === set) i++;
    const run = elements.slice(start, i);
    out.push(verb === 'add' ? nft.addElements(set, run) : nft.deleteElements(set, run));
  }
  return out;
}

/** Element changes between two versions of one Service: a changed value or comment is a delete and an add. */
function diffElements(beforeItems: readonly FragmentItem[], afterItems: readonly FragmentItem[], adds: Element[], dels: Element[]): void {
  const before = [...expandItems(beforeItems)];
  const after = [...expandItems(afterItems)];
  const id = (e: Element): string => `${e.set}\0${e.key}`;
  const same = (a: Element | undefined, b: Element): boolean => a !== undefined && a.value === b.value && a.comment === b.comment;
  const old = new Map(before.map((e) => [id(e), e]));
  const now = new Map(after.map((e) => [id(e), e]));
  for (const [k, e] of old) if (!same(now.get(k), e)) dels.push(e);
  for (const [k, e] of now) if (!same(old.get(k), e)) adds.push(e);
}
