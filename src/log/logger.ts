import { pino } from 'pino';

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

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
