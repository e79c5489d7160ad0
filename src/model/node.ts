import { type JsonObject, isObject } from './fields.js';
import { parseIP } from './ip.js';

/**
 * A Node's IPs as kube-proxy picks its node IPs (utilnode.GetNodeHostIPs): InternalIP addresses before
 * ExternalIP ones, in the order the Node lists them, canonical, without duplicates.
 */
export function nodeIPsOf(node: JsonObject): string[] {
  const status = node['status'];
  const addresses = isObject(status) && Array.isArray(status['addresses']) ? status['addresses'] : [];
  const out: string[] = [];
  for (const type of ['InternalIP', 'ExternalIP']) {
    for (const a of addresses) {
      if (!isObject(a) || a['type'] !== type || typeof a['address'] !== 'string') continue;
      const ip = parseIP(a['address']);
      if (ip !== undefined && !out.includes(ip.text)) out.push(ip.text);
    }
  }
  return out;
}
