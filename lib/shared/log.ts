import { pino, destination, stdTimeFunctions, type Logger } from 'pino';
import pretty from 'pino-pretty';
import { escapesAllowed } from './terminal.js';

export type { Logger };

/**
 * Structured JSON lines on stderr (stdout stays for command output); readable text when stderr is
 * a terminal, coloured unless NO_COLOR is set. One line per state change, never one per sample.
 */
export function createLogger(level: string, name = 'influencer-node'): Logger {
  const options = { level, name, base: { pid: process.pid }, timestamp: stdTimeFunctions.isoTime };
  if (process.stderr.isTTY) {
    const colorize = escapesAllowed(process.stderr);
    return pino(options, pretty({ destination: 2, colorize, sync: true, ignore: 'pid,name' }));
  }
  return pino(options, destination({ dest: 2, sync: true }));
}

/** Logs once per change of a named state (up/down), not once per retry. */
export class StateLog {
  private state: string | undefined;
  constructor(
    private readonly log: Logger,
    private readonly what: string,
  ) {}

  set(state: string, fields: Record<string, unknown> = {}, level: 'info' | 'warn' | 'error' = 'info'): void {
    if (state === this.state) return;
    const first = this.state === undefined;
    this.state = state;
    if (first && state === 'up') return;
    this.log[level]({ ...fields, [this.what]: state }, `${this.what} ${state}`);
  }
}
