import type { Logger } from '../shared/log.js';

/**
 * Resolves on the first SIGINT or SIGTERM, so the caller can stop in order; a second signal
 * exits at once (code 130) for an operator who does not want to wait.
 */
export function untilSignal(log: Logger): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    let first: NodeJS.Signals | undefined;
    const onSignal = (signal: NodeJS.Signals): void => {
      if (first) {
        log.warn({ signal }, 'second signal: exiting at once');
        process.exit(130);
      }
      first = signal;
      log.info({ signal }, 'stopping');
      resolve(signal);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}
