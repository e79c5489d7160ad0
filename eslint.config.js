// Lint rules that keep the pipeline's boundaries true as the code grows (run by `npm test`):
// - compilers (everything in a backend but its I/O files) do no I/O: no execa, no fs, no tool runner;
// - backends do not import each other (what two share lives in backends/shared/);
// - below the CLI nothing imports the CLI; the model and the kernel's syntax are pure;
// - the trace interpreters (diagnose/trace/) are pure and read rules, not compilers: only the ipvsadm syntax.
import tseslint from 'typescript-eslint';

const IO = [
  { name: 'execa', message: 'Only src/kernel/exec.ts runs programs.' },
  { name: 'node:child_process', message: 'Only src/kernel/exec.ts runs programs.' },
  { name: 'node:fs', message: 'Pure code does no I/O.' },
  { name: 'node:fs/promises', message: 'Pure code does no I/O.' },
];
const KERNEL_IO = { regex: '(^|/)kernel/(?!syntax/)', allowTypeImports: true, message: 'Pure code may use the kernel syntax (kernel/syntax/) and kernel types, never run tools.' };
const CLI = { regex: '(^|/)cli/', message: 'Nothing below the CLI imports the CLI.' };
const otherBackends = (self) => ({
  regex: `(^|/)backends/(?!${self}/|shared/|backend\\.js$)[^/]+/|^\\.\\./(?!${self}/|shared/)(iptables|ipvs|nftables)/`,
  message: 'Backends do not import each other: move what they share to backends/shared/.',
});
const CONCRETE_BACKENDS = { regex: '(^|/)backends/(iptables|ipvs|nftables)/', message: 'Only the CLI wires concrete backends; use the contract in backends/backend.ts.' };

const restrict = (paths, patterns) => ({ '@typescript-eslint/no-restricted-imports': ['error', { paths, patterns }] });

/** Files in a backend that read or change the kernel; everything else there is a pure compiler. */
const BACKEND_IO = ['src/backends/*/backend.ts', 'src/backends/*/cleanup.ts', 'src/backends/*/live.ts', 'src/backends/shared/ipset-cleanup.ts', 'src/backends/shared/canary.ts'];

export default tseslint.config(
  { ignores: ['dist/**', 'dist-bench/**', 'node_modules/**', 'test/**', '*.js', '*.mjs'] },
  {
    files: ['src/**/*.ts'],
    languageOptions: { parser: tseslint.parser },
    plugins: { '@typescript-eslint': tseslint.plugin },
  },
  { files: ['src/model/**/*.ts', 'src/kernel/syntax/**/*.ts'], rules: restrict(IO, [KERNEL_IO, CLI, { regex: '(^|/)(backends|sync|serve|sources)/', message: 'The model and tool syntax depend on nothing above them.' }]) },
  { files: ['src/kernel/**/*.ts'], ignores: ['src/kernel/syntax/**'], rules: restrict([], [CLI, { regex: '(^|/)(backends|sync|serve|sources|log)/', message: 'The kernel layer depends only on the model.' }]) },
  ...['iptables', 'ipvs', 'nftables', 'shared'].flatMap((self) => [
    { files: [`src/backends/${self}/**/*.ts`], ignores: BACKEND_IO, rules: restrict(IO, [KERNEL_IO, CLI, otherBackends(self)]) },
    { files: BACKEND_IO.filter((f) => f.includes('/*/') || f.includes(`/${self}/`)).map((f) => f.replace('/*/', `/${self}/`)), rules: restrict([], [CLI, otherBackends(self)]) },
  ]),
  { files: ['src/backends/backend.ts'], rules: restrict(IO, [KERNEL_IO, CLI, CONCRETE_BACKENDS]) },
  {
    files: ['src/diagnose/trace/**/*.ts'],
    rules: restrict(IO, [
      KERNEL_IO,
      CLI,
      { regex: '(^|/)backends/(?!ipvs/ipvsadm\\.js$)', message: 'The interpreters read rules, not compilers (a second model would agree with the first by construction).' },
      { regex: '(^|/)(sync|serve|sources|log)/', message: 'The interpreters are pure.' },
    ]),
  },
  { files: ['src/sync/**/*.ts', 'src/serve/**/*.ts', 'src/sources/**/*.ts', 'src/log/**/*.ts'], rules: restrict([], [CLI, CONCRETE_BACKENDS]) },
  // explain's diagnosis is pure but for the API reads it is handed (api-input.ts, through the API client).
  { files: ['src/diagnose/explain/**/*.ts'], rules: restrict(IO, [KERNEL_IO, CLI, CONCRETE_BACKENDS]) },
);
