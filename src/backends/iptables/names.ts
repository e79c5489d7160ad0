import type { Protocol } from '../../model/types.js';
import { chainHash } from '../shared/chain-hash.js';

/** The per-service-port chain names; all share one hash and differ by prefix, as in kube-proxy. */
export interface ServicePortChains {
  readonly svc: string;
  readonly svl: string;
  readonly ext: string;
  readonly fw: string;
}

export function servicePortChains(servicePortName: string, protocol: Protocol): ServicePortChains {
  const hash = chainHash(servicePortName + protocol.toLowerCase());
  return { svc: `KUBE-SVC-${hash}`, svl: `KUBE-SVL-${hash}`, ext: `KUBE-EXT-${hash}`, fw: `KUBE-FW-${hash}` };
}

/** `endpoint` is `ip:port` as Go's JoinHostPort prints it. */
export function endpointChain(servicePortName: string, protocol: Protocol, endpoint: string): string {
  return `KUBE-SEP-${chainHash(servicePortName + protocol.toLowerCase() + endpoint)}`;
}
