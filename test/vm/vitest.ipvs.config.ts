// The IPVS suites, run INSIDE the test VM by test/kernel/ipvs.test.ts: the shared packet suites (clusterip,
// policies, external) with the ipvs backend, and test/guest's IPVS-only files. Otherwise the guest's own settings
// (cache dir, timeouts).
import { defineConfig } from 'vitest/config';
import guest from './vitest.guest.config.js';

export default defineConfig({
  ...guest,
  test: {
    ...guest.test,
    include: [
      'test/kernel/clusterip.test.ts',
      'test/kernel/policies.test.ts',
      'test/kernel/external.test.ts',
      'test/guest/ipvs*.guest.test.ts',
    ],
    env: { SWITCHBOARD_KERNEL_BACKEND: 'ipvs' },
  },
});
