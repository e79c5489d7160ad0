// `explain service`, pure: the Service, its EndpointSlices, the Pods of its namespace and this node's Node in,
// an Explanation out. Verdicts come from the agent's own model: normalizeService / normalizeEndpointSlice
// build a ClusterState, viewService merges the slices and runs upstream's endpoint selection for this node,
// exactly as every backend renders it. The Pods only explain what the slices show.
import type { PortSelection } from '../../model/categorize.js';
import { endpointsForPort } from '../../model/endpoints.js';
import { HEADLESS_LABEL, normalizeEndpointSlice, SERVICE_NAME_LABEL } from '../../model/endpoint-slice.js';
import { type JsonObject, isObject, labelsOf } from '../../model/fields.js';
import { ALL_FAMILIES, mergeNodeIPs } from '../../model/ip.js';
import { nodeIPsOf } from '../../model/node.js';
import { normalizeService, SERVICE_PROXY_NAME_LABEL } from '../../model/service.js';
import { viewService } from '../../model/service-view.js';
import { ClusterState } from '../../model/state.js';
import type { Endpoint, EndpointSlice, Service, ServicePortSpec } from '../../model/types.js';
import {
  type DetailPort,
  type PodInfo,
  type ServiceDetails,
  type SliceDetails,
  findPort,
  isTerminal,
  readPod,
  readServiceDetails,
  readSliceDetails,
} from './objects.js';
import { differenceText, nearestMisses, selectorText, selects, similarNames } from './selector.js';
import type { EndpointReport, Explanation, FamilyVerdict, Finding, PortReport, ServiceSummary, Verdict } from './types.js';

/** The node's zone label, as objects.ts reads it for compile. */
const ZONE_LABEL = 'topology.kubernetes.io/zone';

export interface ExplainTarget {
  readonly namespace: string;
  readonly name: string;
  /** The node the verdicts are for: its endpoints are local, its zone picks topology hints. */
  readonly nodeName: string;
  /** `--node-ip`, primary first. */
  readonly nodeIPs: readonly string[];
}

/** What explain reads, from manifests or the API server. */
export interface ExplainInput {
  /** Where it came from, for messages: `the input (a.yaml)`, `the API server (https://...)`. */
  readonly source: string;
  readonly service: JsonObject | undefined;
  /** The EndpointSlices labelled with the Service's name, in its namespace. */
  readonly slices: readonly JsonObject[];
  /** The Pods of the Service's namespace; undefined when they could not be read. */
  readonly pods: readonly JsonObject[] | undefined;
  /** Why `pods` is undefined. */
  readonly podsUnavailable: string | undefined;
  /** Pods of other namespaces, when the input has them (manifests); for "your Pods are in another namespace". */
  readonly podsElsewhere: readonly JsonObject[];
  readonly node: JsonObject | undefined;
  /** Names of the Services in the namespace (for ServiceNotFound). */
  readonly servicesInNamespace: readonly string[];
  /** Other namespaces holding a Service of this name (for ServiceNotFound). */
  readonly namespacesWithName: readonly string[];
}

/** The target Service or one of its slices is malformed: the CLI exits 2 with these messages. */
export class ExplainInputError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(problems.join('\n'));
    this.name = 'ExplainInputError';
  }
}

export function explainService(target: ExplainTarget, input: ExplainInput): Explanation {
  const key = `${target.namespace}/${target.name}`;
  if (input.service === undefined) return notFound(key, target, input);
  const details = readServiceDetails(input.service);
  const normalized = normalizeService(input.service);
  if (normalized.status === 'invalid') {
    throw new ExplainInputError(normalized.errors.map((e) => `Service ${key}: ${e.field}: ${e.message}`));
  }
  const ctx = new Context(target, input, details);
  if (normalized.status === 'skipped') return ctx.notProxied();
  return ctx.proxied(normalized.value);
}

function notFound(key: string, target: ExplainTarget, input: ExplainInput): Explanation {
  const similar = similarNames(target.name, input.servicesInNamespace);
  const elsewhere = input.namespacesWithName.filter((ns) => ns !== target.namespace);
  let message = `Service ${key} not found in ${input.source}`;
  if (similar.length > 0) message += `; similar names in namespace ${target.namespace}: ${similar.join(', ')}`;
  if (elsewhere.length > 0) message += `; a Service named ${target.name} exists in namespace${elsewhere.length > 1 ? 's' : ''} ${elsewhere.join(', ')}`;
  const hints: string[] = [];
  if (similar[0] !== undefined) hints.push(`switchboard explain service ${target.namespace}/${similar[0]}`);
  if (elsewhere[0] !== undefined) hints.push(`switchboard explain service ${elsewhere[0]}/${target.name}`);
  const fix =
    hints.length > 0
      ? `check the name and namespace the clients use (DNS ${target.name}.${target.namespace}.svc); did you mean: ${hints.join(' or ')}`
      : `check the name and namespace the clients use (DNS ${target.name}.${target.namespace}.svc): kubectl -n ${target.namespace} get services`;
  return {
    service: key,
    node: target.nodeName,
    served: false,
    findings: [{ code: 'ServiceNotFound', severity: 'error', message, fix }],
    ports: [],
    summary: undefined,
  };
}

/** What a new ClusterIP connection gets, read off the selection the backends render (unservedPortRule's test). */
function clusterIPVerdict(sel: PortSelection): 'dnat' | 'reject' | 'drop' {
  if (!sel.hasAnyEndpoints) return 'reject';
  if (sel.internal.length === 0) return 'drop';
  return 'dnat';
}

const VERDICT_RANK: Readonly<Record<Verdict, number>> = { dnat: 0, drop: 1, reject: 2, 'not-proxied': 3 };

function plural(n: number, word: string, many = `${word}s`): string {
  return `${n} ${n === 1 ? word : many}`;
}

/** `a, b, c and 4 more`. */
function names(list: readonly string[], max = 5): string {
  if (list.length <= max) return list.join(', ');
  return `${list.slice(0, max).join(', ')} and ${list.length - max} more`;
}

function portText(p: { readonly name: string; readonly port: number; readonly protocol: string }): string {
  return `${p.name === '' ? '' : `${p.name} `}${p.port}/${p.protocol}`;
}

function targetText(p: DetailPort): string {
  return typeof p.targetPort === 'number' ? String(p.targetPort) : `"${p.targetPort}"`;
}

/** A merge patch of the Service, shell-quoted for `kubectl patch --type merge -p`. */
function patchCommand(details: ServiceDetails, patch: JsonObject): string {
  return `kubectl -n ${details.namespace} patch service ${details.name} --type merge -p '${JSON.stringify(patch)}'`;
}

interface Accumulated extends Finding {
  /** Indexes of ports this finding explains (why they are not served). */
  readonly explains: ReadonlySet<number>;
}

class Context {
  private readonly findings: Accumulated[] = [];
  private readonly slices: readonly SliceDetails[];
  /** Pod name by IP: the slices' targetRefs, then the namespace's Pods. */
  private readonly podByIP = new Map<string, string>();
  private readonly pods: readonly PodInfo[] | undefined;
  private readonly zone: string | undefined;
  private readonly nodeIPs: readonly string[];

  constructor(
    private readonly target: ExplainTarget,
    private readonly input: ExplainInput,
    private readonly details: ServiceDetails,
  ) {
    this.slices = input.slices.map(readSliceDetails);
    this.pods = input.pods?.map(readPod);
    for (const s of this.slices) for (const [ip, pod] of s.pods) this.podByIP.set(ip, pod);
    for (const p of this.pods ?? []) for (const ip of p.ips) if (!this.podByIP.has(ip)) this.podByIP.set(ip, p.name);
    const nodeMeta = input.node?.['metadata'];
    this.zone = isObject(nodeMeta) ? labelsOf(nodeMeta).get(ZONE_LABEL) : undefined;
    this.nodeIPs = mergeNodeIPs(target.nodeIPs, input.node === undefined ? [] : nodeIPsOf(input.node));
  }

  private get key(): string {
    return `${this.details.namespace}/${this.details.name}`;
  }

  private add(finding: Finding, explains: Iterable<number> = []): void {
    this.findings.push({ ...finding, explains: new Set(explains) });
  }

  private result(ports: readonly PortReport[], summary: ServiceSummary, proxied: boolean): Explanation {
    const order = { error: 0, warning: 1, info: 2 } as const;
    const findings = [...this.findings]
      .sort((a, b) => order[a.severity] - order[b.severity])
      .map(({ code, severity, message, fix }): Finding => ({ code, severity, message, fix }));
    return {
      service: this.key,
      node: this.target.nodeName,
      served: proxied && ports.every((p) => p.verdict === 'dnat'),
      findings,
      ports,
      summary,
    };
  }

  private summary(service: Service | undefined, families: readonly (readonly FamilyVerdict[])[]): ServiceSummary {
    const clusterIPs = service ? ALL_FAMILIES.flatMap((f) => service.clusterIPs[f] ?? []) : this.details.clusterIP === '' ? [] : [this.details.clusterIP];
    return {
      type: this.details.type,
      clusterIPs,
      selector: selectorText(this.details.selector),
      internalTrafficPolicy: service?.internalTrafficPolicy ?? 'Cluster',
      externalTrafficPolicy: service?.externalTrafficPolicy ?? 'Cluster',
      affinity: service?.sessionAffinity.type === 'ClientIP' ? `ClientIP ${service.sessionAffinity.timeoutSeconds}s` : undefined,
      families,
    };
  }

  private endpointReports(endpoints: readonly Endpoint[], nodeByIP: ReadonlyMap<string, string | undefined>): EndpointReport[] {
    return endpoints.map((ep) => ({
      ip: ep.ip,
      port: ep.port,
      node: nodeByIP.get(ep.ip) ?? null,
      ready: ep.ready,
      serving: ep.serving,
      terminating: ep.terminating,
      pod: this.podByIP.get(ep.ip) ?? null,
    }));
  }

  // ---- Services Switchboard does not proxy ----

  notProxied(): Explanation {
    const d = this.details;
    const proxyName = d.labels.get(SERVICE_PROXY_NAME_LABEL);
    const ip = d.clusterIP !== '' && d.clusterIP !== 'None' ? d.clusterIP : undefined;
    // The order of normalizeService's checks: the label first, then ExternalName, then headless.
    if (proxyName !== undefined) {
      this.add({
        code: 'NotProxied',
        severity: 'error',
        message:
          `Service ${this.key} is labelled ${SERVICE_PROXY_NAME_LABEL}=${proxyName}: Switchboard and kube-proxy skip it, ` +
          `so only a proxy named "${proxyName}" programs ${ip ?? 'its addresses'}`,
        fix: `if no proxy named "${proxyName}" runs on this node, remove the label: kubectl -n ${d.namespace} label service ${d.name} ${SERVICE_PROXY_NAME_LABEL}-`,
      });
    } else if (d.type === 'ExternalName') {
      this.add({
        code: 'ExternalName',
        severity: 'error',
        message: `Service ${this.key} is type ExternalName${d.externalName ? ` (${d.externalName})` : ''}: cluster DNS answers with a CNAME; there is no virtual IP and nothing to proxy`,
        fix: `nothing to fix if clients resolve the name; for a proxied Service use type ClusterIP with a selector (or EndpointSlices)`,
      });
    } else if (d.clusterIP === 'None') {
      this.add({
        code: 'Headless',
        severity: 'error',
        message: `Service ${this.key} is headless (spec.clusterIP: None): it has no virtual IP, DNS returns the Pod IPs, and Switchboard programs nothing for it by design`,
        fix:
          `if clients need a virtual IP, recreate the Service without clusterIP: None (the field is immutable): ` +
          `kubectl -n ${d.namespace} get service ${d.name} -o yaml > svc.yaml, delete spec.clusterIP and spec.clusterIPs, kubectl replace --force -f svc.yaml`,
      });
    } else {
      this.add({
        code: 'NoClusterIP',
        severity: 'error',
        message: `Service ${this.key} has no cluster IP allocated (spec.clusterIP is empty): there is no virtual IP to proxy`,
        fix: `create the Service through the API server, which allocates one (a manifest written by hand lacks it: read it back with kubectl get -o yaml)`,
      });
    }
    // The endpoints are listed all the same, from the slices as the agent would read them if it proxied the
    // Service: without the labels that make its watch skip them.
    const slices = this.slicesIgnoringSkipLabels();
    const nodeByIP = nodeNames(slices);
    const ports = d.ports.map((p): PortReport => {
      const spec: ServicePortSpec = { name: p.name, port: p.port, protocol: p.protocol, nodePort: p.nodePort };
      const endpoints = ALL_FAMILIES.flatMap((f) => endpointsForPort(slices, spec, f, this.target.nodeName));
      return { name: p.name, port: p.port, protocol: p.protocol, targetPort: p.targetPort, verdict: 'not-proxied', endpoints: this.endpointReports(endpoints, nodeByIP) };
    });
    return this.result(ports, this.summary(undefined, ports.map(() => [])), false);
  }

  private slicesIgnoringSkipLabels(): EndpointSlice[] {
    const out: EndpointSlice[] = [];
    for (const raw of this.input.slices) {
      const metadata = isObject(raw['metadata']) ? raw['metadata'] : {};
      const labels = isObject(metadata['labels']) ? { ...metadata['labels'] } : {};
      delete labels[HEADLESS_LABEL];
      delete labels[SERVICE_PROXY_NAME_LABEL];
      const r = normalizeEndpointSlice({ ...raw, metadata: { ...metadata, labels } });
      if (r.status === 'ok') out.push(r.value);
    }
    return out;
  }

  // ---- Services Switchboard proxies ----

  proxied(service: Service): Explanation {
    const state = new ClusterState(this.target.nodeName, this.zone, this.nodeIPs);
    state.setService(service);
    const problems: string[] = [];
    for (const raw of this.input.slices) {
      const r = normalizeEndpointSlice(raw);
      const name = readSliceDetails(raw).name;
      if (r.status === 'invalid') for (const e of r.errors) problems.push(`EndpointSlice ${this.details.namespace}/${name}: ${e.field}: ${e.message}`);
      // Skipped slices (FQDN, labelled for another proxy) are skipped by the agent too.
      else if (r.status === 'ok' && r.value.service === service.key) state.setSlice(r.value);
    }
    if (problems.length > 0) throw new ExplainInputError(problems);

    const views = ALL_FAMILIES.flatMap((f) => {
      const v = service.clusterIPs[f] === undefined ? undefined : viewService(state, service.key, f);
      return v === undefined || v.clusterIP === undefined ? [] : [{ family: f, clusterIP: v.clusterIP, view: v }];
    });
    const nodeByIP = nodeNames(state.slicesOf(service.key));
    const families: FamilyVerdict[][] = [];
    const selections: { family: FamilyVerdict; sel: PortSelection; externallyAccessible: boolean; nodePort: number }[][] = [];
    const ports = service.ports.map((spec, i): PortReport => {
      const detail = this.detailPort(spec);
      const perFamily = views.map(({ family, clusterIP, view }) => {
        const pv = view.ports[i];
        if (pv === undefined) throw new Error(`explain: port ${i} missing from the ${family} view of ${this.key}`);
        const fv: FamilyVerdict = { family, clusterIP, verdict: clusterIPVerdict(pv.selection), used: pv.selection.internal.map((ep) => ep.hostPort) };
        return { family: fv, sel: pv.selection, endpoints: pv.endpoints, externallyAccessible: pv.externallyAccessible, nodePort: pv.nodePort };
      });
      families.push(perFamily.map((f) => f.family));
      selections.push(perFamily);
      const verdict = perFamily.reduce<Verdict>((worst, f) => (VERDICT_RANK[f.family.verdict] > VERDICT_RANK[worst] ? f.family.verdict : worst), 'dnat');
      const endpoints = perFamily.flatMap((f) => this.endpointReports(f.endpoints, nodeByIP));
      return { name: spec.name, port: spec.port, protocol: spec.protocol, targetPort: detail.targetPort, verdict, endpoints };
    });

    this.objectChecks(service, ports);
    this.selectionChecks(service, ports, selections);
    this.unexplained(service, ports, selections.map((s) => s.map((f) => f.family)));
    return this.result(ports, this.summary(service, families), true);
  }

  /** The full port (targetPort) behind a model port. */
  private detailPort(spec: ServicePortSpec): DetailPort {
    return (
      this.details.ports.find((p) => p.name === spec.name && p.protocol === spec.protocol && p.port === spec.port) ?? {
        ...spec,
        targetPort: spec.port,
      }
    );
  }

  /** Checks on the objects: selector, Pods, readiness, target ports. */
  private objectChecks(service: Service, ports: readonly PortReport[]): void {
    const d = this.details;
    const all = ports.map((_, i) => i);
    const notServed = all.filter((i) => ports[i]?.verdict !== 'dnat');
    if (d.selector.size === 0) {
      if (this.input.slices.length === 0) {
        this.add(
          {
            code: 'NoSelector',
            severity: 'error',
            message: `Service ${this.key} has no selector and no EndpointSlice names it (label ${SERVICE_NAME_LABEL}=${d.name}): nothing gives it endpoints`,
            fix: `add spec.selector matching the Pods' labels (${patchCommand(d, { spec: { selector: { app: '<label value>' } } })}), or create an EndpointSlice labelled ${SERVICE_NAME_LABEL}=${d.name} for endpoints outside the cluster`,
          },
          all,
        );
        return;
      }
      this.sliceReadiness(ports, notServed);
      return;
    }
    if (this.pods === undefined) {
      this.add({
        code: 'PodChecksSkipped',
        severity: 'info',
        message: `the Pods of namespace ${d.namespace} were not read (${this.input.podsUnavailable ?? 'unknown reason'}): selector, readiness and target-port checks are skipped; the verdicts come from the EndpointSlices alone`,
        fix: `include Pods in the input (kubectl get svc,endpointslices,pods,nodes -A -o yaml), or grant list on pods in ${d.namespace} (docs/usage/explain.md, RBAC)`,
      });
      this.sliceReadiness(ports, notServed);
      return;
    }
    const selected = this.pods.filter((p) => selects(d.selector, p.labels));
    if (selected.length === 0) {
      this.selectorMatchesNothing(this.pods, all, notServed.length > 0);
      return;
    }
    const publish = d.publishNotReadyAddresses;
    // As the EndpointSlice controller: terminal Pods and Pods without an IP are no endpoints; ready unless terminating.
    const cannotServe = (p: PodInfo): boolean => isTerminal(p) || p.ips.length === 0 || !(p.ready || publish);
    const live = selected.filter((p) => !isTerminal(p));

    service.ports.forEach((spec, i) => {
      const port = this.detailPort(spec);
      this.targetPortChecks(service, port, i, live, ports[i]?.verdict !== 'dnat');
    });

    // Terminating Pods are shutting down, not unready: OnlyTerminatingEndpoints and NoEndpoints speak of them.
    const notReady = selected.filter((p) => !p.deleting && cannotServe(p));
    if (notReady.length > 0) {
      const explains = notServed.filter((i) => {
        const spec = service.ports[i];
        if (spec === undefined) return false;
        const port = this.detailPort(spec);
        const candidates = selected.filter((p) => !p.deleting && (isTerminal(p) || findPort(p, port) !== undefined));
        return candidates.length > 0 && candidates.every(cannotServe);
      });
      const readyCount = selected.length - notReady.length;
      this.add(
        {
          code: 'PodsNotReady',
          severity: explains.length > 0 ? 'error' : 'warning',
          message:
            `${plural(selected.length, 'Pod')} selected by ${selectorText(d.selector)}, ${readyCount} ready; not ready: ` +
            notReady.slice(0, 5).map((p) => podStatus(p)).join('; ') +
            (notReady.length > 5 ? `; and ${notReady.length - 5} more` : '') +
            (explains.length > 0 ? ` (so ${portsText(explains.map((i) => ports[i]))} ${explains.length === 1 ? 'has' : 'have'} no endpoint to send traffic to)` : ''),
          fix: `a Pod gets traffic once its readiness probe passes: kubectl -n ${d.namespace} describe pod ${notReady[0]?.name ?? ''} (probe failures are its Events), kubectl -n ${d.namespace} logs ${notReady[0]?.name ?? ''}`,
        },
        explains,
      );
    }
  }

  /** SelectorMatchesNoPods, naming the nearest misses. */
  private selectorMatchesNothing(pods: readonly PodInfo[], all: readonly number[], notServed: boolean): void {
    const d = this.details;
    const misses = nearestMisses(d.selector, pods);
    let message = `selector ${selectorText(d.selector)} matches no Pod in namespace ${d.namespace}`;
    if (pods.length === 0) message += ` (the namespace has no Pods${this.input.pods === undefined ? '' : ` in ${this.input.source}`})`;
    else if (misses.length === 0) message += `; none of its ${plural(pods.length, 'Pod')} carries any of the selector's labels`;
    for (const [i, miss] of misses.entries()) {
      message += `${i === 0 ? '; closest' : '; next'}: ${plural(miss.pods.length, 'Pod')} (${names(miss.pods.map((p) => p.name), 3)}) with ${miss.differences.map(differenceText).join(', ')}`;
    }
    const elsewhere = this.input.podsElsewhere.map(readPod).filter((p) => selects(d.selector, p.labels));
    const otherNamespaces = [...new Set(elsewhere.map((p) => p.namespace))].sort();
    if (otherNamespaces.length > 0) {
      message += `; Pods matching it run in namespace${otherNamespaces.length > 1 ? 's' : ''} ${otherNamespaces.join(', ')} (a Service selects Pods of its own namespace only)`;
    }
    let fix: string;
    const best = misses[0];
    if (best !== undefined) {
      const selector: Record<string, string | null> = {};
      for (const diff of best.differences) selector[diff.key] = diff.actual ?? null;
      const pod = best.pods[0]?.name ?? '';
      fix =
        `make the selector match the Pods: ${patchCommand(d, { spec: { selector } })}, ` +
        `or change the labels of the Pods' template (kubectl -n ${d.namespace} get pod ${pod} --show-labels shows them)`;
    } else if (otherNamespaces.length > 0) {
      fix = `create the Service in namespace ${otherNamespaces[0] ?? ''}, where its Pods run, or run the Pods in ${d.namespace}`;
    } else {
      fix = `check which labels the Pods carry (kubectl -n ${d.namespace} get pods --show-labels) and set spec.selector to them`;
    }
    // Slices that still list endpoints (a snapshot older than the label change) serve until they catch up.
    this.add({ code: 'SelectorMatchesNoPods', severity: notServed ? 'error' : 'warning', message, fix }, all);
  }

  /** NamedTargetPortNotFound, ProtocolMismatch and TargetPortNotDeclared for one port. */
  private targetPortChecks(service: Service, port: DetailPort, index: number, pods: readonly PodInfo[], notServed: boolean): void {
    if (pods.length === 0) return;
    const d = this.details;
    const declared = pods.flatMap((p) => p.containers.flatMap((c) => c.ports.map((cp) => ({ pod: p, container: c.name, ...cp }))));
    const declaredText = (list: typeof declared): string =>
      [...new Set(list.map((cp) => `${cp.name === '' ? '' : `${cp.name} `}${cp.containerPort}/${cp.protocol}`))].join(', ');
    const otherProtocolPorts = (matches: (cp: (typeof declared)[number]) => boolean): typeof declared => {
      const same = declared.filter(matches);
      if (same.length === 0 || same.some((cp) => cp.protocol === port.protocol)) return [];
      // The Service may already have the port with the Pods' protocol (DNS: 53/UDP and 53/TCP).
      const covered = (protocol: string): boolean => service.ports.some((sp) => sp.port === port.port && sp.protocol === protocol);
      return same.filter((cp) => !covered(cp.protocol));
    };

    if (typeof port.targetPort === 'string') {
      const name = port.targetPort;
      const unresolved = pods.filter((p) => findPort(p, port) === undefined);
      if (unresolved.length > 0) {
        const none = unresolved.length === pods.length;
        const named = declared.filter((cp) => cp.name !== '');
        const sameName = declared.filter((cp) => cp.name === name);
        const emptySlices = this.slices.filter((s) => s.endpointCount > 0 && !s.ports.some((sp) => sp.name === port.name && sp.protocol === port.protocol));
        let message =
          `Service port ${portText(port)} has targetPort "${name}": it resolves (name and protocol ${port.protocol}) on ${pods.length - unresolved.length} of ${plural(pods.length, 'selected Pod')}` +
          ` (not on ${names(unresolved.map((p) => p.name), 3)}); ` +
          (sameName.length > 0
            ? `they declare "${name}" as ${declaredText(sameName)}`
            : named.length > 0
              ? `they declare ${declaredText(named)}`
              : `they declare no named port${declared.length > 0 ? ` (only ${declaredText(declared)})` : ''}`);
        if (emptySlices.length > 0) {
          message += `; EndpointSlice ${names(emptySlices.map((s) => sliceText(s)), 3)} ${emptySlices.length === 1 ? 'has' : 'have'} no port ${port.name === '' ? '(unnamed)' : `"${port.name}"`}`;
        }
        const candidate = declared.find((cp) => cp.protocol === port.protocol && cp.name !== '') ?? declared.find((cp) => cp.protocol === port.protocol);
        const fix =
          sameName.length > 0
            ? `declare the container port "${name}" with protocol ${port.protocol}, or give the Service port the Pods' protocol (${sameName[0]?.protocol ?? ''})`
            : candidate !== undefined
              ? `name the container port "${name}" in the Pod template, or point targetPort at the port the Pods declare: ` +
                `kubectl -n ${d.namespace} patch service ${d.name} --type json -p '${JSON.stringify([{ op: 'replace', path: `/spec/ports/${index}/targetPort`, value: candidate.name || candidate.containerPort }])}'`
              : `name the container port "${name}" (protocol ${port.protocol}) in the Pod template, or set a numeric targetPort`;
        this.add({ code: 'NamedTargetPortNotFound', severity: none && notServed ? 'error' : 'warning', message, fix }, none && notServed ? [index] : []);
      }
      const mismatch = otherProtocolPorts((cp) => cp.name === name);
      if (mismatch.length > 0) this.protocolMismatch(port, mismatch.map((cp) => cp.protocol), declaredText(mismatch));
      return;
    }

    const target = port.targetPort;
    const mismatch = otherProtocolPorts((cp) => cp.containerPort === target);
    if (mismatch.length > 0) {
      this.protocolMismatch(port, mismatch.map((cp) => cp.protocol), declaredText(mismatch));
      return;
    }
    if (declared.length > 0 && !declared.some((cp) => cp.containerPort === target)) {
      const same = declared.filter((cp) => cp.protocol === port.protocol);
      const suggestion = same[0] ?? declared[0];
      this.add({
        code: 'TargetPortNotDeclared',
        severity: 'warning',
        message:
          `Service port ${portText(port)} has targetPort ${target}, which no selected Pod declares; they declare ${declaredText(declared)}. ` +
          `Declaring container ports is optional, so this may be right; if the application listens on ${suggestion?.containerPort ?? 'another port'}, connections through the Service are refused`,
        fix:
          `check where the application listens (kubectl -n ${d.namespace} port-forward pod/${pods[0]?.name ?? ''} ${target}); ` +
          `if on ${suggestion?.containerPort ?? '<port>'}, set targetPort: ${suggestion?.name || suggestion?.containerPort || '<port>'}`,
      });
    }
  }

  private protocolMismatch(port: DetailPort, protocols: readonly string[], declared: string): void {
    const other = [...new Set(protocols)].join('/');
    const ip = this.details.clusterIP;
    this.add({
      code: 'ProtocolMismatch',
      severity: 'warning',
      message:
        `Service port ${portText(port)} (targetPort ${targetText(port)}) is ${port.protocol} only, but the selected Pods declare that port only as ${other} (${declared}): ` +
        `${other} to ${ip}:${port.port} is not proxied`,
      fix: `add a port with protocol: ${other} to the Service (e.g. {name: ${port.name === '' ? 'p' : port.name}-${other.toLowerCase()}, port: ${port.port}, protocol: ${other}, targetPort: ${port.targetPort}}), or set protocol: ${other} on this one`,
    });
  }

  /** PodsNotReady from the slices' conditions, when Pods cannot be consulted (unread, or a Service without a selector). */
  private sliceReadiness(ports: readonly PortReport[], notServed: readonly number[]): void {
    const notReady = new Map<string, EndpointReport>();
    for (const p of ports) for (const ep of p.endpoints) if (!ep.ready && !ep.terminating) notReady.set(ep.ip, ep);
    if (notReady.size === 0) return;
    const explains = notServed.filter((i) => {
      const eps = (ports[i]?.endpoints ?? []).filter((ep) => !ep.terminating);
      return eps.length > 0 && eps.every((ep) => notReady.has(ep.ip));
    });
    const list = [...notReady.values()].map((ep) => `${ep.pod ?? ep.ip}${ep.node ? ` on ${ep.node}` : ''} (ready: false)`);
    this.add(
      {
        code: 'PodsNotReady',
        severity: explains.length > 0 ? 'error' : 'warning',
        message: `the EndpointSlices of ${this.key} list ${plural(notReady.size, 'endpoint')} that ${notReady.size === 1 ? 'is' : 'are'} not ready: ${names(list)}`,
        fix: `a Pod gets traffic once its readiness probe passes: kubectl -n ${this.details.namespace} describe pod ${[...notReady.values()][0]?.pod ?? '<pod>'}`,
      },
      explains,
    );
  }

  /** Checks on what endpoint selection chose: terminating fallback and traffic policies. */
  private selectionChecks(
    service: Service,
    ports: readonly PortReport[],
    selections: readonly (readonly { family: FamilyVerdict; sel: PortSelection; externallyAccessible: boolean; nodePort: number }[])[],
  ): void {
    const node = this.target.nodeName;
    const terminatingOnly: { port: number; eps: Endpoint[] }[] = [];
    const noLocal: { port: number; family: FamilyVerdict; sel: PortSelection }[] = [];
    const noLocalExternal: { port: number; nodePort: number }[] = [];
    selections.forEach((perFamily, i) => {
      for (const { family, sel, externallyAccessible, nodePort } of perFamily) {
        if (family.verdict === 'dnat' && sel.internal.every((ep) => ep.terminating)) terminatingOnly.push({ port: i, eps: [...sel.internal] });
        if (family.verdict === 'drop') noLocal.push({ port: i, family, sel });
        if (service.externalTrafficPolicy === 'Local' && externallyAccessible && sel.hasAnyEndpoints && sel.external.length === 0) noLocalExternal.push({ port: i, nodePort });
      }
    });
    const uniquePorts = (list: readonly { port: number }[]): number[] => [...new Set(list.map((x) => x.port))];
    const podNames = (eps: readonly Endpoint[]): string => names(eps.map((ep) => this.podByIP.get(ep.ip) ?? ep.hostPort), 3);

    if (terminatingOnly.length > 0) {
      const first = terminatingOnly[0];
      this.add({
        code: 'OnlyTerminatingEndpoints',
        severity: 'warning',
        message:
          `${portsText(uniquePorts(terminatingOnly).map((i) => ports[i]))}: no ready endpoint; node ${node} sends new connections to ` +
          `${plural(first?.eps.length ?? 0, 'serving, terminating endpoint')} (${podNames(first?.eps ?? [])}) as a fallback, until ${first?.eps.length === 1 ? 'it stops' : 'they stop'}`,
        fix: `find out why no ready replacement exists: kubectl -n ${this.details.namespace} get pods${this.details.selector.size > 0 ? ` -l ${selectorText(this.details.selector)}` : ''} (a rollout stuck on readiness, a scale to zero)`,
      });
    }
    if (noLocal.length > 0) {
      const where = new Set<string>();
      for (const { port } of noLocal) for (const ep of ports[port]?.endpoints ?? []) if (ep.ready && ep.node) where.add(ep.node);
      const targets = noLocal.map(({ port, family }) => `${family.clusterIP}:${ports[port]?.port ?? ''}`);
      this.add(
        {
          code: 'NoLocalEndpoints',
          severity: 'error',
          message:
            `internalTrafficPolicy: Local, and ${portsText(uniquePorts(noLocal).map((i) => ports[i]))} ${uniquePorts(noLocal).length === 1 ? 'has' : 'have'} no endpoint on node ${node}: ` +
            `new connections from this node to ${names([...new Set(targets)], 3)} are dropped (clients hang until they time out)` +
            (where.size > 0 ? `; the ready endpoints are on ${names([...where].sort())}` : ''),
          fix: `run a backend on every node with clients (a DaemonSet), or let any node's endpoint serve: ${patchCommand(this.details, { spec: { internalTrafficPolicy: 'Cluster' } })}`,
        },
        uniquePorts(noLocal),
      );
    }
    if (noLocalExternal.length > 0) {
      const nodePorts = [...new Set(noLocalExternal.map((x) => x.nodePort).filter((p) => p !== 0))];
      this.add({
        code: 'NoLocalEndpointsExternal',
        severity: 'warning',
        message:
          `externalTrafficPolicy: Local, and ${portsText(uniquePorts(noLocalExternal).map((i) => ports[i]))} ${uniquePorts(noLocalExternal).length === 1 ? 'has' : 'have'} no endpoint on node ${node}: ` +
          `traffic from outside to ${nodePorts.length > 0 ? `NodePort ${nodePorts.join(', ')} and ` : ''}external or load-balancer IPs arriving at this node is dropped ` +
          `(by design: a load balancer should skip this node${service.healthCheckNodePort !== 0 ? `, its health check on port ${service.healthCheckNodePort} fails here` : ''}); ClusterIP traffic is not affected`,
        fix: `if clients reach this node directly, run a backend on it or let any node's endpoint serve: ${patchCommand(this.details, { spec: { externalTrafficPolicy: 'Cluster' } })} (the client source IP is then lost)`,
      });
    }
  }

  /** NoEndpoints for every port and family not served that no error finding explains. */
  private unexplained(service: Service, ports: readonly PortReport[], families: readonly (readonly FamilyVerdict[])[]): void {
    const explained = new Set<number>();
    for (const f of this.findings) if (f.severity === 'error') for (const i of f.explains) explained.add(i);
    families.forEach((perFamily, i) => {
      const port = ports[i];
      const spec = service.ports[i];
      if (port === undefined || spec === undefined || explained.has(i)) return;
      for (const fv of perFamily) {
        if (fv.verdict === 'dnat') continue;
        const where = `${fv.clusterIP}:${port.port}/${port.protocol}`;
        const served = perFamily.filter((o) => o.verdict === 'dnat').map((o) => o.family);
        const familySlices = this.slices.filter((s) => s.addressType === fv.family);
        let message: string;
        let fix: string;
        if (served.length > 0) {
          message = `port ${portText(port)} is served over ${served.join(', ')} but not over ${fv.family}: no ready ${fv.family} endpoint for ${where}` + (familySlices.length === 0 ? ` (no ${fv.family} EndpointSlice)` : '');
          fix = `give the Pods ${fv.family} addresses (a dual-stack Pod network), or make the Service single-stack (spec.ipFamilyPolicy: SingleStack; recreate it, spec.clusterIPs cannot shrink in place)`;
        } else if (this.input.slices.length === 0) {
          message = `no EndpointSlice names Service ${this.key} (label ${SERVICE_NAME_LABEL}=${this.details.name}), so ${where} has no endpoints`;
          fix = `the EndpointSlice controller (kube-controller-manager) writes them for a Service with a selector: check that it runs; for a Service without a selector, create them`;
        } else if (!this.slices.some((s) => s.ports.some((sp) => sp.name === port.name && sp.protocol === port.protocol))) {
          const seen = [...new Set(this.slices.flatMap((s) => s.ports.map((sp) => `"${sp.name}"/${sp.protocol}`)))];
          message = `the EndpointSlices of ${this.key} (${names(this.slices.map(sliceText), 3)}) have no port named "${port.name}"/${port.protocol}${seen.length > 0 ? `; they name ${seen.join(', ')}` : ''}, so ${where} has no endpoints`;
          fix = `a slice port matches a Service port by name and protocol: make them agree (kubectl -n ${this.details.namespace} get endpointslices -l ${SERVICE_NAME_LABEL}=${this.details.name} -o yaml)`;
        } else if (port.endpoints.length > 0 && port.endpoints.every((ep) => ep.terminating)) {
          message = `every endpoint of port ${portText(port)} is terminating and none is serving (${names(port.endpoints.map((ep) => ep.pod ?? ep.ip), 3)}): its Pods are shutting down, so ${where} has no endpoints`;
          fix = `scale the workload up or find why its new Pods are missing: kubectl -n ${this.details.namespace} get pods${this.details.selector.size > 0 ? ` -l ${selectorText(this.details.selector)}` : ''}`;
        } else {
          message = `the EndpointSlices of ${this.key} list no ready or serving-terminating endpoint for ${where}`;
          if (this.details.selector.size > 0 && this.pods !== undefined) message += ', though the selected Pods look ready: the slices lag the Pods (is the EndpointSlice controller running?), or the input mixes times';
          fix = `kubectl -n ${this.details.namespace} get endpointslices -l ${SERVICE_NAME_LABEL}=${this.details.name} -o yaml; kubectl -n ${this.details.namespace} get pods -o wide`;
        }
        this.add({ code: 'NoEndpoints', severity: 'error', message, fix }, [i]);
      }
    });
  }
}

function nodeNames(slices: readonly EndpointSlice[]): Map<string, string | undefined> {
  const out = new Map<string, string | undefined>();
  for (const s of slices) for (const ep of s.endpoints) if (!out.has(ep.ip) || out.get(ep.ip) === undefined) out.set(ep.ip, ep.nodeName);
  return out;
}

function portsText(list: readonly (PortReport | undefined)[]): string {
  const ps = list.filter((p): p is PortReport => p !== undefined);
  return `port${ps.length === 1 ? '' : 's'} ${ps.map(portText).join(', ')}`;
}

function sliceText(s: SliceDetails): string {
  const ports = s.ports.length === 0 ? 'ports: <unset>' : `ports ${s.ports.map((p) => `${p.name === '' ? '' : `${p.name} `}${p.port ?? '?'}/${p.protocol}`).join(', ')}`;
  return `${s.name} (${ports}, ${plural(s.endpointCount, 'endpoint')})`;
}

/** `api-0 on node-b: Running, container app not ready (readiness GET :8081/healthz), 3 restarts`. */
function podStatus(p: PodInfo): string {
  const parts: string[] = [p.phase];
  if (p.deleting) parts.push('terminating');
  if (isTerminal(p)) parts.push('finished, never an endpoint again');
  else if (p.ips.length === 0) parts.push('no Pod IP yet');
  const containers = p.containers.filter((c) => c.ready === false);
  for (const c of containers) {
    let text = `container ${c.name} ${c.state ?? 'not ready'}`;
    if (c.readinessProbe !== undefined && c.state === undefined) text += ` (readiness ${c.readinessProbe})`;
    if (c.restarts > 0) text += `, ${plural(c.restarts, 'restart')}`;
    parts.push(text);
  }
  if (containers.length === 0 && p.notReadyReason !== undefined && !isTerminal(p)) parts.push(p.notReadyReason);
  return `${p.name}${p.nodeName ? ` on ${p.nodeName}` : ''}: ${parts.join(', ')}`;
}
