import type { Config } from '../config.js';
import { createLogger } from '../log.js';
import { DuplicateNodeError } from '../membership.js';
import { InfluencerNode } from '../node.js';
import { untilSignal } from '../signals.js';

export async function startCommand(config: Config): Promise<number> {
  const log = createLogger(config.logLevel);
  const node = new InfluencerNode(config, log);
  const signal = untilSignal(log);
  try {
    await Promise.race([node.start(), signal]);
  } catch (err) {
    if (err instanceof DuplicateNodeError) {
      log.error(err.message);
      process.stderr.write(`influencer-node: ${err.message}\n`);
      await node.stop().catch(() => undefined);
      return 1;
    }
    throw err;
  }
  await signal;
  await node.stop();
  return 0;
}
