import { type LiveRules, parseIptablesSave } from '../../kernel/syntax/iptables-save.js';
import { isPerServiceChain } from '../shared/iptables-fixed.js';

/** An `iptables-save` dump as a full sync reads it: chains, built-in jumps, and our per-service chains' rules. */
export function parseLiveRules(dump: string): LiveRules {
  return parseIptablesSave(dump, isPerServiceChain);
}
