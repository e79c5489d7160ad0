#!/usr/bin/env node
// Builds and runs the agent benchmark (test/bench/agent.ts). Usage, from `npm run bench` or directly (root, after
// `npm run build`): node test/bench/bin/agent-bench.mjs [--agent-sizes 1000,10000] [--agent-rounds 20]
//   [--agent-runtimes cli,bundle]
import { bundleAndRun } from './bundle.mjs';

await bundleAndRun('agent-bench', "import { main } from './agent.js';\nprocess.exitCode = await main(process.argv.slice(2));\n");
