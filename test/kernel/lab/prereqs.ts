import { accessSync, constants, existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';

const REQUIRED_TOOLS = ['ip', 'iptables-restore', 'iptables-save', 'ip6tables-restore', 'ip6tables-save', 'conntrack'] as const;

function onPath(tool: string): boolean {
  const dirs = (process.env['PATH'] ?? '').split(delimiter).filter((d) => d !== '');
  return dirs.some((dir) => {
    try {
      accessSync(join(dir, tool), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/**
 * Kernel tests must fail loudly (not skip) when they cannot run: a green run that tested nothing
 * is worse than a red one.
 */
export function requireKernelTestPrereqs(): void {
  const problems: string[] = [];
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) {
    problems.push('must run as root (network namespaces and netfilter need CAP_NET_ADMIN)');
  }
  // The lab is dual-stack: a kernel without IPv6 (or booted with ipv6.disable=1) has no /proc/sys/net/ipv6.
  if (!existsSync('/proc/sys/net/ipv6')) problems.push('the kernel has no IPv6 (/proc/sys/net/ipv6 is missing)');
  const missing = REQUIRED_TOOLS.filter((t) => !onPath(t));
  if (missing.length > 0) {
    problems.push(`missing on PATH (${process.env['PATH'] ?? ''}): ${missing.join(', ')}`);
  }
  if (problems.length > 0) {
    throw new Error(`kernel test prerequisites not met: ${problems.join('; ')}`);
  }
}
