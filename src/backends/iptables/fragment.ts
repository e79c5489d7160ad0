import { categorizeEndpoints } from '../../model/categorize.js';
import type { Endpoint, Service, ServiceKey, ServicePortSpec } from '../../model/types.js';
import { servicePortNameString } from '../../model/types.js';
import { ChainTable, type EndpointChainStyle } from './chain-table.js';
import { type LoopbackKey, loopbackKey } from './loopback-set.js';
import { endpointChain, servicePortChains } from './names.js';
import type { IptablesOptions } from './options.js';
import { probability } from './probability.js';
import { KUBE_MARK_MASQ, KUBE_SERVICES } from './skeleton.js';

/**
 * Everything one Service contributes to the ruleset. Fragments are immutable and cached until the Service
 * or its endpoints change; syncs compare old and new fragments to decide what to write.
 */
export interface ServiceFragment {
  readonly key: ServiceKey;
  /** nat chains owned by this Service (SVC, SVL, SEP), name → rule lines, each ending in a newline. */
  readonly natChains: ReadonlyMap<string, string>;
  /** Rules this Service puts in the shared nat KUBE-SERVICES chain, without the leading `-A KUBE-SERVICES `. */
  readonly natServiceRules: readonly string[];
  /** Rules this Service puts in the shared filter KUBE-SERVICES chain (REJECT/DROP), likewise. */
  readonly filterServiceRules: readonly string[];
  /** nat rules in the Service's own chains plus its KUBE-SERVICES rules, for metrics and the README's counts. */
  readonly natRuleCount: number;
  /**
   * Flat layout: the KUBE-LOOP-BACK members (`ip,proto:port,ip`) of the endpoints this Service DNATs to
   * straight from its policy chains, so KUBE-POSTROUTING can masquerade a pod reaching itself. Empty otherwise.
   */
  readonly loopback: readonly LoopbackKey[];
}

/** kube-proxy's match of one service port: `-m tcp -p tcp -d VIP --dport PORT`. */
export function portMatch(proto: string, clusterIP: string, port: number): string {
  return `-m ${proto} -p ${proto} -d ${clusterIP} --dport ${port}`;
}

/**
 * The filter KUBE-SERVICES rule (without `-A KUBE-SERVICES `) for a service port nothing may serve: REJECT when
 * it has no endpoints at all, DROP when its traffic policy wants local endpoints and there are none. Shared
 * by both backends: IPVS mode rejects the same way.
 */
export function unservedPortRule(spn: string, match: string, hasAnyEndpoints: boolean, hasInternalEndpoints: boolean): string | undefined {
  if (!hasAnyEndpoints) return `-m comment --comment "${spn} has no endpoints" ${match} -j REJECT`;
  if (!hasInternalEndpoints) return `-m comment --comment "${spn} has no local endpoints" ${match} -j DROP`;
  return undefined;
}

/** A service port with its merged endpoints, ready to render. */
export interface ServicePortInput {
  readonly port: ServicePortSpec;
  readonly endpoints: readonly Endpoint[];
}

/**
 * Renders one Service's rules with kube-proxy's chain names, comments and argument order (see
 * pkg/proxy/iptables/proxier.go): dispatch in KUBE-SERVICES, masquerade and load balancing in the policy
 * chain, hairpin masquerade and DNAT in one chain per endpoint, REJECT/DROP in filter when nothing serves.
 */
export function renderServiceFragment(
  service: Service,
  ports: readonly ServicePortInput[],
  opts: IptablesOptions,
  largeCluster: boolean,
): ServiceFragment {
  const clusterIP = service.clusterIPs[opts.family];
  const natChains = new ChainTable();
  const natServiceRules: string[] = [];
  const filterServiceRules: string[] = [];
  const loopback: LoopbackKey[] = [];
  let natRuleCount = 0;
  if (clusterIP === undefined) return { key: service.key, natChains, natServiceRules, filterServiceRules, natRuleCount, loopback };
  // Affinity needs a chain per endpoint for its `recent` list, so those Services keep kube-proxy's layout.
  const flat = opts.layout === 'flat' && service.sessionAffinity.type !== 'ClientIP';

  for (const { port, endpoints } of ports) {
    const spn = servicePortNameString({ service: service.key, port: port.name, protocol: port.protocol });
    const proto = port.protocol.toLowerCase();
    const chains = servicePortChains(spn, port.protocol);
    const iTPLocal = service.internalTrafficPolicy === 'Local';
    const sel = categorizeEndpoints(
      endpoints,
      { internalTrafficPolicy: service.internalTrafficPolicy, externalTrafficPolicy: 'Cluster', externallyAccessible: false },
      opts.node,
    );
    const hasInternalEndpoints = iTPLocal ? sel.localEndpoints.length > 0 : sel.hasAnyEndpoints;
    const internalPolicyChain = iTPLocal ? chains.svl : chains.svc;
    const match = portMatch(proto, clusterIP, port.port);

    const unserved = unservedPortRule(spn, match, sel.hasAnyEndpoints, hasInternalEndpoints);
    if (unserved !== undefined) filterServiceRules.push(unserved);

    const epChains = new Map<string, string>();
    const epChainName = (ep: Endpoint): string => {
      let name = epChains.get(ep.hostPort);
      if (name === undefined) {
        name = endpointChain(spn, port.protocol, ep.hostPort);
        epChains.set(ep.hostPort, name);
      }
      return name;
    };
    const ipComment = `-m comment --comment "${spn} cluster IP" ${match}`;
    // Lines are joined, never appended with +=: join yields one flat string, while += leaves a tree of
    // string pieces that costs several times the text's size at 10,000 Services.
    const policyRules = (chain: string, list: readonly Endpoint[], withMasquerade: boolean): string => {
      const lines: string[] = [];
      if (withMasquerade) {
        if (opts.masqueradeAll) lines.push(`-A ${chain} ${ipComment} -j ${KUBE_MARK_MASQ}\n`);
        else if (opts.clusterCidr !== undefined) lines.push(`-A ${chain} ${ipComment} ! -s ${opts.clusterCidr} -j ${KUBE_MARK_MASQ}\n`);
      }
      const comment = (ep: Endpoint): string => (largeCluster ? '' : ` -m comment --comment "${spn} -> ${ep.hostPort}"`);
      if (service.sessionAffinity.type === 'ClientIP') {
        const seconds = service.sessionAffinity.timeoutSeconds;
        for (const ep of list) {
          const sep = epChainName(ep);
          lines.push(`-A ${chain}${comment(ep)} -m recent --name ${sep} --rcheck --seconds ${seconds} --reap -j ${sep}\n`);
        }
      }
      list.forEach((ep, i) => {
        const stat = i < list.length - 1 ? ` -m statistic --mode random --probability ${probability(list.length - i)}` : '';
        // Flat: the endpoint chain's DNAT inline (without its no-op `-m tcp`: each match costs re-validation time).
        const action = flat ? `-p ${proto} -j DNAT --to-destination ${ep.hostPort}` : `-j ${epChainName(ep)}`;
        lines.push(`-A ${chain}${comment(ep)}${stat} ${action}\n`);
      });
      return lines.join('');
    };

    if (hasInternalEndpoints) {
      natServiceRules.push(`${ipComment} -j ${internalPolicyChain}`);
    }
    if (sel.clusterEndpoints.length > 0) {
      natChains.setText(chains.svc, policyRules(chains.svc, sel.clusterEndpoints, hasInternalEndpoints && !iTPLocal));
    }
    if (sel.localEndpoints.length > 0) {
      natChains.setText(chains.svl, policyRules(chains.svl, sel.localEndpoints, hasInternalEndpoints && iTPLocal));
    }
    const style: EndpointChainStyle = {
      comment: largeCluster ? '' : ` -m comment --comment ${spn}`,
      affinity: service.sessionAffinity.type === 'ClientIP',
      proto,
    };
    for (const ep of sel.allReachable) {
      if (flat) loopback.push(loopbackKey(ep.ip, proto, ep.port));
      else natChains.setEndpoint(epChainName(ep), style, ep.ip, ep.port);
    }
  }
  natRuleCount += natChains.ruleCount(countLines);
  natRuleCount += natServiceRules.length;
  return { key: service.key, natChains, natServiceRules, filterServiceRules, natRuleCount, loopback };
}

export function countLines(text: string): number {
  let n = 0;
  for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) n++;
  return n;
}
