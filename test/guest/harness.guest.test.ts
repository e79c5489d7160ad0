// Runs inside the test VM (see test/vm/vm.ts): proves the guest is the Debian 6.1 kernel with working IPVS.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { release } from 'node:os';
import { describe, expect, it } from 'vitest';

describe('the test VM guest', () => {
  it('runs the cached Debian 6.1 kernel', () => {
    expect(release()).toMatch(/^6\.1\./);
  });

  it('has IPVS: ipvsadm -Ln lists the (empty) virtual server table', () => {
    const out = execFileSync('ipvsadm', ['-Ln'], { encoding: 'utf8' });
    expect(out).toMatch(/^IP Virtual Server version \d+\.\d+\.\d+/);
    expect(readFileSync('/proc/net/ip_vs', 'utf8')).toContain('IP Virtual Server version');
  });
});
