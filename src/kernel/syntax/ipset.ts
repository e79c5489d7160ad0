// The text of `ipset restore` input lines. Pure.
import type { IPFamily } from '../../model/ip.js';

/** Large enough for 100,000 endpoints with room; the kernel allocates as entries arrive. */
const MAX_ELEMENTS = 1 << 20;

/** An `ipset restore` create line; every set Switchboard makes is created alike, whichever backend names it. */
export function createSetLine(name: string, type: string, family: IPFamily): string {
  return `create ${name} ${type} family ${family === 'IPv4' ? 'inet' : 'inet6'} hashsize 1024 maxelem ${MAX_ELEMENTS}\n`;
}
