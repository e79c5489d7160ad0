// Bundles a benchmark entry (TypeScript under test/bench) into dist-bench/ and imports it.
// The benchmarks reuse the kernel-test lab and API fixture, which find their helper scripts (echo server,
// bridge) relative to their own source file via import.meta.url. A plain bundle would resolve those relative
// to the bundle, so this build pins each bundled module's import.meta.url to its source file.
import { readFile } from 'node:fs/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';

const benchDir = fileURLToPath(new URL('..', import.meta.url));
const root = fileURLToPath(new URL('../../..', import.meta.url));

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

/**
 * Builds `contents` (an entry module resolved from test/bench) to dist-bench/NAME.mjs and runs it.
 * The entry sees its own bundle's path as the constant BENCH_BUNDLE (to re-run itself, e.g. in a namespace).
 */
export async function bundleAndRun(name, contents) {
  const outfile = `${root}dist-bench/${name}.mjs`;
  await build({
    stdin: { contents, resolveDir: benchDir, sourcefile: `${name}-entry.ts`, loader: 'ts' },
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    outfile,
    logLevel: 'warning',
    define: { BENCH_BUNDLE: JSON.stringify(outfile) },
    plugins: [sourceImportMetaUrl],
  });
  await import(pathToFileURL(outfile).href);
}
