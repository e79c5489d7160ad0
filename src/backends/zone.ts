import type { NodeTopology } from '../model/categorize.js';
import type { ClusterState } from '../model/state.js';
import type { ServiceKey } from '../model/types.js';

/**
 * A backend's options are fixed per compiler, so a new node zone means a new compiler with every Service
 * rendered again (the caller's next sync is a full one). Undefined when the zone is unchanged.
 */
export function rebuiltForZone<O extends { readonly node: NodeTopology }, C extends { update(state: ClusterState, changed: Iterable<ServiceKey>): void }>(
  options: O,
  zone: string | undefined,
  state: ClusterState,
  compilerFor: (options: O) => C,
): { options: O; compiler: C } | undefined {
  if (zone === options.node.zone) return undefined;
  const next = { ...options, node: { ...options.node, zone } };
  const compiler = compilerFor(next);
  compiler.update(
    state,
    [...state.allServices()].map((s) => s.key),
  );
  return { options: next, compiler };
}
