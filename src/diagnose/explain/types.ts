// What `switchboard explain service` reports. The JSON form (render.ts) is a contract: issue 17 gives its shape.
import type { IPFamily } from '../../model/ip.js';
import type { Protocol } from '../../model/types.js';

export type Severity = 'error' | 'warning' | 'info';

/**
 * Stable codes. The list, plus four this implementation adds where none of those fits:
 * NoClusterIP (a Service without an allocated cluster IP), TargetPortNotDeclared (a numeric targetPort no
 * selected Pod declares), NoEndpoints (a port not served for a reason none of the others names, e.g. one
 * family of a dual-stack Service, or slices that lag the Pods) and PodChecksSkipped (Pods unreadable).
 */
export type FindingCode =
  | 'ServiceNotFound'
  | 'Headless'
  | 'ExternalName'
  | 'NotProxied'
  | 'NoClusterIP'
  | 'NoSelector'
  | 'SelectorMatchesNoPods'
  | 'PodsNotReady'
  | 'NamedTargetPortNotFound'
  | 'ProtocolMismatch'
  | 'TargetPortNotDeclared'
  | 'OnlyTerminatingEndpoints'
  | 'NoLocalEndpoints'
  | 'NoLocalEndpointsExternal'
  | 'NoEndpoints'
  | 'PodChecksSkipped';

export interface Finding {
  readonly code: FindingCode;
  /** error: a reason some ClusterIP traffic of the Service is not served (exit 3); warning: served, but likely wrong; info: a limit of the check. */
  readonly severity: Severity;
  readonly message: string;
  readonly fix: string;
}

/** What this node does with a new connection to the port's ClusterIP; `not-proxied` when it programs nothing for the Service. */
export type Verdict = 'dnat' | 'reject' | 'drop' | 'not-proxied';

export interface EndpointReport {
  readonly ip: string;
  readonly port: number;
  readonly node: string | null;
  readonly ready: boolean;
  readonly serving: boolean;
  readonly terminating: boolean;
  readonly pod: string | null;
}

export interface PortReport {
  readonly name: string;
  readonly port: number;
  readonly protocol: Protocol;
  readonly targetPort: number | string;
  readonly verdict: Verdict;
  /** Every endpoint the Service's EndpointSlices give the port, unready and terminating ones included. */
  readonly endpoints: readonly EndpointReport[];
}

/** One family's ClusterIP verdict for a port (a dual-stack Service has two), for the text form. */
export interface FamilyVerdict {
  readonly family: IPFamily;
  readonly clusterIP: string;
  readonly verdict: Exclude<Verdict, 'not-proxied'>;
  /** `ip:port` of the endpoints this node sends new ClusterIP connections to. */
  readonly used: readonly string[];
}

/** Facts the text form prints in its header; not part of the JSON contract. */
export interface ServiceSummary {
  readonly type: string;
  readonly clusterIPs: readonly string[];
  readonly selector: string;
  readonly internalTrafficPolicy: string;
  readonly externalTrafficPolicy: string;
  readonly affinity: string | undefined;
  /** Per port, in `ports` order; empty lists for a Service that is not proxied. */
  readonly families: readonly (readonly FamilyVerdict[])[];
}

export interface Explanation {
  readonly service: string;
  readonly node: string;
  /** Every port has an endpoint this node sends new ClusterIP connections to (in every family). */
  readonly served: boolean;
  readonly findings: readonly Finding[];
  readonly ports: readonly PortReport[];
  /** Undefined when the Service was not found. */
  readonly summary: ServiceSummary | undefined;
}
