import type { Endpoint, ServicePortSpec } from './types.js';

/** A service port with its merged endpoints, ready to render. */
export interface ServicePortInput {
  readonly port: ServicePortSpec;
  readonly endpoints: readonly Endpoint[];
}
