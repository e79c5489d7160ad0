#!/usr/bin/env node
// Builds and runs the churn soak (test/bench/soak.ts). Usage, from `npm run bench -- --soak` or directly (root,
// after `npm run build`): node test/bench/bin/soak-bench.mjs [--soak-rounds 5] [--soak-services 1000]
//   [--soak-endpoints 10] [--soak-max-minutes 20]
import { bundleAndRun } from './bundle.mjs';

await bundleAndRun('soak-bench', "import { main } from './soak.js';\nprocess.exitCode = await main(process.argv.slice(2));\n");
