import { pino } from 'pino';

import type { LogLevel } from './levels.js';

export type Logger = pino.Logger;

/**
 * Structured JSON logs on stderr (stdout is reserved for --dry-run payloads), one line per event, with
 * ISO timestamps so they line up with kubectl's and the kernel's.
 */
export function createLogger(level: LogLevel, fd = 2): Logger {
  return pino(
    {
      level,
      base: { component: 'switchboard' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    pino.destination({ fd, sync: true }),
  );
}
