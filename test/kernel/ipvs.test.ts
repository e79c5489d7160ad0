// The IPVS backend in a kernel that has IPVS: the host's has not, so one QEMU guest (test/vm) runs the IPVS
// suites with its own vitest: the shared packet suites (clusterip, policies, external) with
// SWITCHBOARD_KERNEL_BACKEND=ipvs, and test/guest's IPVS-only ones. Each suite becomes one test here, which
// fails with the guest's messages.
import { relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { useVm } from '../vm/use-vm.js';
import { REPO_ROOT, type VitestJsonReport, runVitestInVm } from '../vm/vm.js';

/** Every file the guest must run; a file missing from the report fails too. */
const SUITES = [
  'test/kernel/clusterip.test.ts',
  'test/kernel/policies.test.ts',
  'test/kernel/external.test.ts',
  'test/guest/ipvs.guest.test.ts',
  'test/guest/ipvs-agent.guest.test.ts',
] as const;

/**
 * Emulated CPUs run the suites roughly ten times slower than the host: all of them took 19 to 29 minutes on a
 * busy 2-core host. A run cut off reports nothing, so the margin is wide.
 */
const GUEST_RUN_MS = 2_700_000;

describe('IPVS backend in a real IPVS kernel (QEMU guest)', () => {
  // One vCPU: under TCG a second one made process starts (and so these suites) slower here.
  const vm = useVm({ memoryMb: 2048 });
  let report: Promise<VitestJsonReport> | undefined;
  /** One guest run for all the tests below, started by whichever runs first. */
  const guestRun = (): Promise<VitestJsonReport> => {
    report ??= runVitestInVm(vm(), { config: 'test/vm/vitest.ipvs.config.ts', timeoutMs: GUEST_RUN_MS });
    return report;
  };

  it.each(SUITES)('%s passes in the guest, every test run', async (suite) => {
    const r = await guestRun();
    const file = r.testResults.find((f) => relative(REPO_ROOT, f.name) === suite);
    expect(file, `${suite} is not in the guest's report (files: ${r.testResults.map((f) => f.name).join(', ')})`).toBeDefined();
    const failures = file!.assertionResults.filter((a) => a.status !== 'passed');
    const messages = failures.map((a) => `${a.status}: ${a.fullName}\n${a.failureMessages.join('\n')}`).join('\n\n');
    expect(file!.message, `${suite} failed to load in the guest`).toBe('');
    expect(failures, messages).toEqual([]);
    expect(file!.assertionResults.length).toBeGreaterThan(0);
  }, GUEST_RUN_MS + 60_000);
});
