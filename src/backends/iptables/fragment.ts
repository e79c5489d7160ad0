import { exactSize } from '../../exact-size.js';
import type { Endpoint, ServiceKey } from '../../model/types.js';
import { ChainTable, type EndpointChainStyle, type PolicyChainSpec, type PolicyChainStyle, hostPortKey } from './chain-table.js';
import type { ServiceView } from '../../model/service-view.js';
import { type HairpinKey, hairpinKey } from '../shared/hairpin-members.js';
import {
  KUBE_EXTERNAL_SERVICES,
  KUBE_MARK_MASQ,
  KUBE_NODEPORTS,
  KUBE_PROXY_FIREWALL,
  KUBE_SERVICES,
  countLines,
  portMatch,
  sharedRule,
  unservedPortRule,
} from '../shared/iptables-fixed.js';
import { cidrContains, parseCidrMasked } from '../../model/ip.js';
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
  /**
   * Rules this Service puts in shared nat chains (KUBE-SERVICES, KUBE-NODEPORTS), each `CHAIN spec` without
   * the leading `-A ` (see sharedRule).
   */
  readonly natServiceRules: readonly string[];
  /** Rules this Service puts in shared filter chains (REJECT/DROP, the firewall, health-check ports), likewise. */
  readonly filterServiceRules: readonly string[];
  /** nat rules in the Service's own chains plus its shared-chain rules, for metrics and the documented rule counts. */
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
export function renderServiceFragment(
  view: ServiceView,
  opts: IptablesOptions,
  largeCluster: boolean,
  nodeIPs: readonly string[],
): ServiceFragment {
  const { service, clusterIP } = view;
  const natChains = new ChainTable();
  const natServiceRules: string[] = [];
  const filterServiceRules: string[] = [];
  const loopback: HairpinKey[] = [];
  let natRuleCount = 0;
  if (clusterIP === undefined) return { key: service.key, natChains, natServiceRules, filterServiceRules, natRuleCount, loopback };
  // Affinity needs a chain per endpoint for its `recent` list, so those Services keep kube-proxy's layout.
  const flat = opts.layout === 'flat' && service.sessionAffinity.type !== 'ClientIP';

  // upstream: the firewall lets the node reach the LB IPs itself when a source range holds the node's IP.
  const nodeInRanges = view.sourceRanges.some((text) => {
    const cidr = parseCidrMasked(text);
    return cidr !== undefined && nodeIPs.some((ip) => cidrContains(cidr, ip));
  });
  const eTPLocal = service.externalTrafficPolicy === 'Local';

  for (const { port, name: spn, proto, selection: sel, nodePort, externallyAccessible } of view.ports) {
    const chains = servicePortChains(spn, port.protocol);
    const iTPLocal = service.internalTrafficPolicy === 'Local';
    const hasEndpoints = sel.hasAnyEndpoints;
    const hasInternalEndpoints = sel.internal.length > 0;
    const hasExternalEndpoints = sel.external.length > 0;
    const internalPolicyChain = iTPLocal ? chains.svl : chains.svc;
    const externalPolicyChain = eTPLocal ? chains.svl : chains.svc;
    const usesExternalChain = hasEndpoints && externallyAccessible;
    const usesFirewall = hasEndpoints && view.loadBalancerIPs.length > 0 && view.sourceRanges.length > 0;
    const match = portMatch(proto, clusterIP, port.port);
    const protoMatch = `-m ${proto} -p ${proto}`;

    const unserved = unservedPortRule(spn, match, hasEndpoints, hasInternalEndpoints);
    if (unserved !== undefined) filterServiceRules.push(sharedRule(KUBE_SERVICES, unserved));
    // External addresses nothing may serve from outside: REJECT without endpoints, DROP without local ones.
    const externalUnserved = (m: string): string | undefined => {
      if (hasExternalEndpoints) return undefined;
      const rule = unservedPortRule(spn, m, hasEndpoints, false)!;
      return sharedRule(KUBE_EXTERNAL_SERVICES, rule);
    };

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

    // 1. The ClusterIP.
    if (hasInternalEndpoints) {
      natServiceRules.push([KUBE_SERVICES, ' ', ipComment, ' -j ', internalPolicyChain].join(''));
    }
    // 2. External IPs.
    for (const ip of view.externalIPs) {
      const m = portMatch(proto, ip, port.port);
      if (hasEndpoints) natServiceRules.push(`${KUBE_SERVICES} -m comment --comment "${spn} external IP" ${m} -j ${chains.ext}`);
      const drop = externalUnserved(m);
      if (drop !== undefined) filterServiceRules.push(drop);
    }
    // 3. Load-balancer IPs: through the firewall chain when source ranges restrict them.
    for (const ip of view.loadBalancerIPs) {
      const m = portMatch(proto, ip, port.port);
      if (hasEndpoints) {
        natServiceRules.push(`${KUBE_SERVICES} -m comment --comment "${spn} loadbalancer IP" ${m} -j ${usesFirewall ? chains.fw : chains.ext}`);
      }
      if (usesFirewall) filterServiceRules.push(`${KUBE_PROXY_FIREWALL} -m comment --comment "${spn} traffic not accepted by ${chains.fw}" ${m} -j DROP`);
    }
    for (const ip of view.loadBalancerIPs) {
      const drop = externalUnserved(portMatch(proto, ip, port.port));
      if (drop !== undefined) filterServiceRules.push(drop);
    }
    // 4. The NodePort (upstream's extra 127.0.0.0/8 rule only feeds an nfacct counter, which we do not keep).
    if (nodePort !== 0) {
      if (hasEndpoints) natServiceRules.push(`${KUBE_NODEPORTS} -m comment --comment ${spn} ${protoMatch} --dport ${nodePort} -j ${chains.ext}`);
      const drop = externalUnserved(`-m addrtype --dst-type LOCAL ${protoMatch} --dport ${nodePort}`);
      if (drop !== undefined) filterServiceRules.push(drop);
    }
    // 5. The health-check node port, open whatever the endpoints (the health server answers 503 itself).
    if (service.healthCheckNodePort !== 0) {
      filterServiceRules.push(
        `${KUBE_NODEPORTS} -m comment --comment "${spn} health check node port" -m tcp -p tcp --dport ${service.healthCheckNodePort} -j ACCEPT`,
      );
    }

    if (sel.clusterEndpoints.length > 0) {
      natChains.setPolicy(chains.svc, policyChain(sel.clusterEndpoints, hasInternalEndpoints && !iTPLocal));
    }
    if (sel.localEndpoints.length > 0) {
      natChains.setPolicy(chains.svl, policyChain(sel.localEndpoints, hasInternalEndpoints && iTPLocal));
    }
    // 7. The external chain: masquerade (Cluster), or short-circuit pod and host traffic to every endpoint (Local).
    if (usesExternalChain) {
      const ext: string[] = [];
      if (!eTPLocal) {
        ext.push(`-A ${chains.ext} -m comment --comment "masquerade traffic for ${spn} external destinations" -j ${KUBE_MARK_MASQ}\n`);
      } else {
        if (opts.clusterCidr !== undefined) {
          ext.push(`-A ${chains.ext} -m comment --comment "pod traffic for ${spn} external destinations" -s ${opts.clusterCidr} -j ${chains.svc}\n`);
        }
        ext.push(
          `-A ${chains.ext} -m comment --comment "masquerade LOCAL traffic for ${spn} external destinations" -m addrtype --src-type LOCAL -j ${KUBE_MARK_MASQ}\n`,
          `-A ${chains.ext} -m comment --comment "route LOCAL traffic for ${spn} external destinations" -m addrtype --src-type LOCAL -j ${chains.svc}\n`,
        );
      }
      if (hasExternalEndpoints) ext.push(`-A ${chains.ext} -j ${externalPolicyChain}\n`);
      natChains.setText(chains.ext, ext.join(''));
    }
    // 8. The firewall chain: allowed sources on to the external chain; the rest fall through, to be dropped in filter.
    if (usesFirewall) {
      const fw: string[] = [];
      const lb = `-m comment --comment "${spn} loadbalancer IP"`;
      for (const cidr of view.sourceRanges) fw.push(`-A ${chains.fw} ${lb} -s ${cidr} -j ${chains.ext}\n`);
      if (nodeInRanges) for (const ip of view.loadBalancerIPs) fw.push(`-A ${chains.fw} ${lb} -s ${ip} -j ${chains.ext}\n`);
      fw.push(`-A ${chains.fw} -m comment --comment "other traffic to ${spn} will be dropped by KUBE-PROXY-FIREWALL"\n`);
      natChains.setText(chains.fw, fw.join(''));
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
