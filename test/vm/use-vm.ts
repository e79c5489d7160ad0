// One VM per test file for vitest suites on the host: booted in beforeAll, closed in afterAll.
import { afterAll, beforeAll } from 'vitest';
import { type BootOptions, type Vm, bootVm, requireVmPrereqs } from './vm.js';

/**
 * Boots a VM before the file's tests and returns a getter for it. A missing prerequisite or a failed boot is
 * thrown again by every getter call, so each test FAILS with the reason: an error thrown from beforeAll
 * itself would only mark the tests skipped.
 */
export function useVm(opts: BootOptions = {}): () => Vm {
  let vm: Vm | undefined;
  let bootError: unknown;
  // Boot time under emulation on a busy 2-core machine, plus prerequisite checks.
  const timeoutMs = (opts.bootTimeoutMs ?? 90_000) + 30_000;
  beforeAll(async () => {
    try {
      requireVmPrereqs();
      vm = await bootVm(opts);
    } catch (e) {
      bootError = e;
    }
  }, timeoutMs);
  afterAll(async () => {
    await vm?.close();
  });
  return () => {
    if (vm !== undefined) return vm;
    if (bootError instanceof Error) throw bootError;
    throw new Error(`the test VM did not boot: ${String(bootError)}`);
  };
}
