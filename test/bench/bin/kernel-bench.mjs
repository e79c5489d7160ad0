#!/usr/bin/env node
// Builds and runs the kernel benchmark (test/bench/kernel.ts). Usage, from `npm run bench -- --kernel` or
// directly (root, after `npm run build`): node test/bench/bin/kernel-bench.mjs [--kernel-sizes 1000,5000,10000]
//   [--kernel-modes nft,legacy] [--kernel-flavours switchboard,kube-proxy] [--kernel-rounds 5]
//   [--kernel-cap-factor 12] [--kernel-min-cap 30]
// The bundle re-runs itself with --worker inside each throw-away namespace.
import { bundleAndRun } from './bundle.mjs';

await bundleAndRun(
  'kernel-bench',
  "import { main } from './kernel.js';\ndeclare const BENCH_BUNDLE: string;\nprocess.exitCode = await main(process.argv.slice(2), BENCH_BUNDLE);\n",
);
