// docs/troubleshooting.md shows real output: every `$ switchboard explain ...` block on the page is run with the
// built CLI and must print what the page says, with the exit code it says. The example dump it reads is the one
// test/support/troubleshooting-dump.ts builds.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { troubleshootingYaml } from '../support/troubleshooting-dump.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

interface Example {
  readonly args: string[];
  readonly output: string;
  readonly exitCode: number;
}

/** ```console blocks: `$ switchboard ARGS`, the output, then `$ echo $?` and the exit code. */
function examples(markdown: string): Example[] {
  const out: Example[] = [];
  for (const [, body = ''] of markdown.matchAll(/```console\n([\s\S]*?)```/g)) {
    const lines = body.split('\n');
    const command = lines[0] ?? '';
    const echo = lines.indexOf('$ echo $?');
    if (!command.startsWith('$ switchboard ') || echo < 0) throw new Error(`malformed example block:\n${body}`);
    out.push({
      args: command.slice('$ switchboard '.length).split(' '),
      output: lines.slice(1, echo).map((l) => `${l}\n`).join(''),
      exitCode: Number(lines[echo + 1]),
    });
  }
  return out;
}

describe('docs/troubleshooting.md', () => {
  const page = readFileSync(`${root}docs/troubleshooting.md`, 'utf8');
  const blocks = examples(page);

  it('runs on the committed example dump, which is the generated one', () => {
    expect(readFileSync(`${root}rules/examples/troubleshooting.yaml`, 'utf8')).toBe(troubleshootingYaml());
    expect(blocks.length).toBeGreaterThanOrEqual(7);
  });

  it.each(blocks.map((b) => [b.args.join(' '), b] as const))('%s prints what the page shows', async (_, b) => {
    const r = await execa(process.execPath, [`${root}dist/cli/main.js`, ...b.args], { cwd: root, reject: false });
    expect(r.stderr).toBe('');
    expect(`${r.stdout}\n`).toBe(b.output);
    expect(r.exitCode).toBe(b.exitCode);
  });

  it('docs/usage/explain.md shows the healthy example as the CLI prints it', () => {
    const usage = readFileSync(`${root}docs/usage/explain.md`, 'utf8');
    const checkout = blocks.find((b) => b.args.includes('shop/checkout'));
    expect(checkout).toBeDefined();
    expect(usage).toContain(checkout?.output);
  });
});
