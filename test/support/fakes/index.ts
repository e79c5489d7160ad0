// The text-level kernel fakes, and the labelled format Switchboard prints a multi-tool plan in (`#### <command>`
// then that command's input, as in rules/golden/ipvs/*.txt), so a printed plan can be replayed onto them.
import type { FakeIpset } from './ipset.js';
import type { FakeIptables } from './iptables.js';
import type { FakeIpLinks, FakeIpvs } from './ipvs.js';

export { FakeToolError, FakeToolErrors } from './common.js';
export { FakeIptables, type FakeIptablesOptions, type IptablesDumpOptions, canonicalRule, iptablesWords } from './iptables.js';
export { FakeIpset } from './ipset.js';
export { FakeIpLinks, FakeIpvs } from './ipvs.js';

export interface LabelledSection {
  /** The command line after `#### `. */
  readonly command: string;
  /** Its input: the lines up to the next label, each ending in a newline ('' when there are none). */
  readonly input: string;
}

/** Splits `#### <command>\n<input>` sections; text before the first label is an error (it would be lost). */
export function splitLabelledSections(text: string): LabelledSection[] {
  const sections: { command: string; lines: string[] }[] = [];
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  for (const [i, line] of lines.entries()) {
    if (line.startsWith('#### ')) sections.push({ command: line.slice('#### '.length).trim(), lines: [] });
    else if (sections.length === 0) throw new Error(`line ${i + 1} (${line}): input before the first '#### <command>' label`);
    else sections[sections.length - 1]!.lines.push(line);
  }
  return sections.map((s) => ({ command: s.command, input: s.lines.map((l) => `${l}\n`).join('') }));
}

export interface FakeNode {
  readonly iptables: FakeIptables;
  readonly ipset: FakeIpset;
  readonly ipvs: FakeIpvs;
  readonly links: FakeIpLinks;
}

/** Applies one labelled section to the fake its command drives; an unknown command is an error. */
export function applySection(node: FakeNode, { command, input }: LabelledSection): void {
  const link = /^ip link add (\S+) type dummy$/.exec(command);
  if (link !== null) {
    if (input !== '') throw new Error(`${command} takes no input`);
    node.links.linkAdd(link[1]!);
    return;
  }
  switch (command) {
    case 'ipset restore -exist':
      node.ipset.restore(input);
      return;
    case 'iptables-restore --noflush':
    case 'ip6tables-restore --noflush':
      node.iptables.restore(input);
      return;
    case 'ip -batch -':
      node.links.batch(input);
      return;
    case 'ipvsadm -R':
      node.ipvs.restore(input);
      return;
    default:
      throw new Error(`no fake for the command '${command}'`);
  }
}
