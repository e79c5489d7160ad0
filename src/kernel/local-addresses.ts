// The addresses of this network namespace's interfaces, for --nodeport-addresses (upstream's GetNodeIPs).
import { networkInterfaces } from 'node:os';
import { parseIP } from '../model/ip.js';

/** Every address of every interface, canonical, loopback included, without duplicates. */
export function localAddresses(): string[] {
  const out = new Set<string>();
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) {
      const ip = parseIP(a.address);
      if (ip !== undefined) out.add(ip.text);
    }
  }
  return [...out];
}
