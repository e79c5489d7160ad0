// The log levels alone, without pino: the CLI lists them for --log-level, and loading pino for that cost
// every command (compile included) some 25 ms at start.
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
