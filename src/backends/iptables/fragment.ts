import { exactSize } from '../../exact-size.js';
import type { Endpoint, ServiceKey } from '../../model/types.js';
import { ChainTable, type EndpointChainStyle, type PolicyChainSpec, type PolicyChainStyle, hostPortKey } from './chain-table.js';
import type { ServiceView } from '../../model/service-view.js';
import { type HairpinKey, hairpinKey } from '../shared/hairpin-members.js';
import { KUBE_MARK_MASQ, KUBE_SERVICES, countLines, portMatch, unservedPortRule } from '../shared/iptables-fixed.js';
import { endpointChain, servicePortChains } from './names.js';
import type { IptablesOptions } from './options.js';
import { probability } from './probability.js';

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
  /** nat rules in the Service's own chains plus its KUBE-SERVICES rules, for metrics and the documented rule counts. */
  readonly natRuleCount: number;
  /**
   * Flat layout: the KUBE-LOOP-BACK members (`ip,proto:port,ip`) of the endpoints this Service DNATs to
   * straight from its policy chains, so KUBE-POSTROUTING can masquerade a pod reaching itself. Empty otherwise.
   */
  readonly loopback: readonly HairpinKey[];
}

/** The endpoint chains of a flat policy chain's rules: none, they DNAT inline. */
const NO_CHAINS: readonly string[] = Object.freeze([]);

/**
 * Renders one Service's rules with kube-proxy's chain names, comments and argument order (see
 * pkg/proxy/iptables/proxier.go): dispatch in KUBE-SERVICES, masquerade and load balancing in the policy
 * chain, hairpin masquerade and DNAT in one chain per endpoint, REJECT/DROP in filter when nothing serves.
 */
export function renderServiceFragment(view: ServiceView, opts: IptablesOptions, largeCluster: boolean): ServiceFragment {
  const { service, clusterIP } = view;
  const natChains = new ChainTable();
  const natServiceRules: string[] = [];
  const filterServiceRules: string[] = [];
  const loopback: HairpinKey[] = [];
  let natRuleCount = 0;
  if (clusterIP === undefined) return { key: service.key, natChains, natServiceRules, filterServiceRules, natRuleCount, loopback };
  // Affinity needs a chain per endpoint for its `recent` list, so those Services keep kube-proxy's layout.
  const flat = opts.layout === 'flat' && service.sessionAffinity.type !== 'ClientIP';

  for (const { port, name: spn, proto, selection: sel } of view.ports) {
    const chains = servicePortChains(spn, port.protocol);
    const iTPLocal = service.internalTrafficPolicy === 'Local';
    const hasInternalEndpoints = sel.internal.length > 0;
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
    // Joined, not concatenated: a template literal leaves a tree of string pieces (V8 cons strings) that costs
    // several times the text's size, and these strings live as long as the fragment.
    const ipComment = ['-m comment --comment "', spn, ' cluster IP" ', match].join('');
    const policyStyle: PolicyChainStyle = {
      spn,
      ipComment,
      affinitySeconds: service.sessionAffinity.type === 'ClientIP' ? service.sessionAffinity.timeoutSeconds : undefined,
      largeCluster,
      dnatProto: flat ? proto : undefined,
    };
    const masquerade = opts.masqueradeAll ? '' : opts.clusterCidr !== undefined ? ` ! -s ${opts.clusterCidr}` : undefined;
    const policyChain = (list: readonly Endpoint[], withMasquerade: boolean): PolicyChainSpec => ({
      style: policyStyle,
      masquerade: withMasquerade ? masquerade : undefined,
      endpoints: list.map((ep) => hostPortKey(ep.ip, ep.port)),
      chains: flat ? NO_CHAINS : list.map(epChainName),
    });

    if (hasInternalEndpoints) {
      natServiceRules.push([ipComment, ' -j ', internalPolicyChain].join(''));
    }
    if (sel.clusterEndpoints.length > 0) {
      natChains.setPolicy(chains.svc, policyChain(sel.clusterEndpoints, hasInternalEndpoints && !iTPLocal));
    }
    if (sel.localEndpoints.length > 0) {
      natChains.setPolicy(chains.svl, policyChain(sel.localEndpoints, hasInternalEndpoints && iTPLocal));
    }
    const style: EndpointChainStyle = {
      comment: largeCluster ? '' : ` -m comment --comment ${spn}`,
      affinity: service.sessionAffinity.type === 'ClientIP',
      proto,
    };
    for (const ep of sel.allReachable) {
      if (flat) loopback.push(hairpinKey(ep.ip, proto, ep.port));
      else natChains.setEndpoint(epChainName(ep), style, ep.ip, ep.port);
    }
  }
  natRuleCount += natChains.ruleCount(countLines);
  natRuleCount += natServiceRules.length;
  natChains.trim();
  return {
    key: service.key,
    natChains,
    natServiceRules: exactSize(natServiceRules),
    filterServiceRules: exactSize(filterServiceRules),
    natRuleCount,
    loopback: exactSize(loopback),
  };
}
