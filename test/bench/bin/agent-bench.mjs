#!/usr/bin/env node
// Builds and runs the agent benchmark (test/bench/agent.ts). Usage, from `npm run bench` or directly (root, after
// `npm run build`): node test/bench/bin/agent-bench.mjs [--agent-sizes 1000,10000] [--agent-rounds 20]
//   [--agent-runtimes cli,bundle]
// It reuses the kernel-test lab and API fixture, which find their helper scripts (echo server, bridge) relative
// to their own source file via import.meta.url. A plain bundle would resolve those relative to the bundle, so
// this build pins each bundled module's import.meta.url to its source file.
import { readFile } from 'node:fs/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';

const benchDir = fileURLToPath(new URL('..', import.meta.url));
const root = fileURLToPath(new URL('../../..', import.meta.url));
const outfile = `${root}dist-bench/agent-bench.mjs`;

/** @type {import('esbuild').Plugin} */
const sourceImportMetaUrl = {
  name: 'source-import-meta-url',
  setup(b) {
    b.onLoad({ filter: /\.ts$/ }, async (args) => {
      const text = await readFile(args.path, 'utf8');
      return { contents: text.replaceAll('import.meta.url', JSON.stringify(pathToFileURL(args.path).href)), loader: 'ts' };
    });
  },
};

await build({
  stdin: {
    contents: "import { main } from './agent.js';\nprocess.exitCode = await main(process.argv.slice(2));\n",
    resolveDir: benchDir,
    sourcefile: 'agent-bench-entry.ts',
    loader: 'ts',
  },
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  packages: 'external',
  outfile,
  logLevel: 'warning',
  plugins: [sourceImportMetaUrl],
});
await import(pathToFileURL(outfile).href);
