// The addresses of this network namespace's interfaces, for --nodeport-addresses (upstream's GetNodeIPs).
import { networkInterfaces } from 'node:os';
import { parseIP } from '../model/ip.js';

/** Every address of every interface but `except`, canonical, loopback included, without duplicates. */
export function localAddresses(except: readonly string[] = []): string[] {
  const out = new Set<string>();
  for (const [name, list] of Object.entries(networkInterfaces())) {
    if (except.includes(name)) continue;
    for (const a of list ?? []) {
      const ip = parseIP(a.address);
      if (ip !== undefined) out.add(ip.text);
    }
  }
  return [...out];
}
