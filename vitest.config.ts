import { configDefaults, defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // test/guest runs inside the test VM (test/vm/vitest.guest.config.ts), on a kernel the host lacks.
    exclude: [...configDefaults.exclude, 'test/guest/**'],
    // Kernel tests share netfilter modules and spawn many processes; running files one at a time
    // keeps timings honest on the 2-core CI machine.
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    reporters: ['default', './test/support/summary-reporter.ts'],
    // Never against a stale build: the CLI, golden and kernel tests run dist/.
    globalSetup: ['./test/support/build-fresh.ts'],
  },
});
