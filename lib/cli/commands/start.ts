import type { Config } from '../../ops/config.js';
import { createLogger } from '../../shared/log.js';
import { InfluencerNode } from '../../node.js';
import { untilSignal } from '../../ops/signals.js';

export async function startCommand(config: Config): Promise<number> {
  const log = createLogger(config.logLevel);
  const node = new InfluencerNode(config, log);
  const signal = untilSignal(log);
  try {
    await Promise.race([node.start(), signal]);
  } catch (err) {
    // close what start() opened (connections, the metrics port), so the process can exit with 1;
    // the CLI prints the error as one line
    await node.stop().catch(() => undefined);
    throw err;
  }
  await signal;
  await node.stop();
  return 0;
}
