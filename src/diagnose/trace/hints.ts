// What kube-proxy's comments say about the Service a rule or element belongs to. The iptables rules carry
// kube-proxy's comments (`ns/svc:port cluster IP`, `... has no endpoints`, `ns/svc:port -> 10.0.0.1:80`), and
// the nftables elements the same words; this reads them back. Pure.
import type { ServiceHint, ServiceKind } from './types.js';

/** A ServicePortName: `namespace/name` or `namespace/name:port` (DNS labels, a port name). */
const SPN = '[a-z0-9](?:[-a-z0-9.]*[a-z0-9])?/[a-z0-9](?:[-a-z0-9.]*[a-z0-9])?(?::[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)?';
const SPN_RE = new RegExp(`^${SPN}$`);

const KINDS: ReadonlyArray<readonly [RegExp, ServiceKind | 'external' | undefined]> = [
  [new RegExp(`^(${SPN}) cluster IP$`), 'clusterIP'],
  [new RegExp(`^(${SPN}) external IP$`), 'externalIP'],
  [new RegExp(`^(${SPN}) loadbalancer IP$`), 'loadBalancer'],
  [new RegExp(`^(${SPN}) nodePort$`), 'nodePort'],
  [new RegExp(`^(${SPN}) traffic not accepted by \\S+$`), 'loadBalancer'],
  [new RegExp(`^(${SPN}) has no (?:local )?endpoints$`), undefined],
  [new RegExp(`^(${SPN}) -> \\S+$`), undefined],
  [new RegExp(`^(?:masquerade |masquerade LOCAL |route LOCAL |pod )?traffic for (${SPN}) external destinations$`), 'external'],
  [new RegExp(`^other traffic to (${SPN}) will be dropped by \\S+$`), 'loadBalancer'],
];

/**
 * The hint in a comment, or undefined when it names no Service (`kubernetes service portals`). A bare
 * ServicePortName names the Service alone; `kind` is what the caller knows from where the comment is.
 */
export function commentHint(comment: string, kind?: ServiceKind | 'external'): ServiceHint | undefined {
  for (const [re, k] of KINDS) {
    const m = re.exec(comment);
    if (m === null) continue;
    const found = k ?? kind;
    return found === undefined ? { service: m[1]! } : { service: m[1]!, kind: found };
  }
  if (SPN_RE.test(comment)) return kind === undefined ? { service: comment } : { service: comment, kind };
  return undefined;
}

/** `ns/name/proto/port` as upstream names nftables chains (`service-HASH-ns/name/tcp/http`): the ServicePortName. */
export function chainNameHint(chain: string): ServiceHint | undefined {
  const m = /^(?:service|local|external|endpoint|firewall)-[A-Z0-9]{8}-([^/]+)\/([^/]+)\/(?:tcp|udp|sctp)\/([^_]*)/.exec(chain);
  if (m === null) return undefined;
  const service = m[3] === '' ? `${m[1]}/${m[2]}` : `${m[1]}/${m[2]}:${m[3]}`;
  return SPN_RE.test(service) ? { service } : undefined;
}
