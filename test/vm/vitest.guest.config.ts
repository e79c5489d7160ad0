// Vitest config for the tests that run INSIDE the test VM (test/guest), started by runVitestInVm in
// test/vm/vm.ts. The host's `vitest run` excludes test/guest: those tests need the guest's kernel.
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  root: fileURLToPath(new URL('../..', import.meta.url)),
  // node_modules is the host's, read-only below the guest's overlay: keep Vite's cache in the guest's tmpfs.
  cacheDir: join(tmpdir(), 'switchboard-vitest-guest-cache'),
  test: {
    include: ['test/guest/**/*.guest.test.ts'],
    // Guest tests share one kernel's netfilter and IPVS state, and the emulated CPUs are few and slow.
    fileParallelism: false,
    // TCG emulation runs node roughly ten times slower than the host does.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    teardownTimeout: 60_000,
  },
});
