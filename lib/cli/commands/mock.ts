import { numberFlag } from '../flags.js';
import type { Config } from '../../ops/config.js';
import { createLogger } from '../../shared/log.js';
import { startMock } from '../../mock/mockstagram.js';
import { untilSignal } from '../../ops/signals.js';

export async function mockCommand(config: Config, opts: Record<string, unknown>): Promise<number> {
  const rate = (name: string, key: string): number => numberFlag(name, opts[key], 0, 1);
  const options = {
    host: String(opts.host),
    port: numberFlag('port', opts.port, 0, 65535, true),
    pkMin: config.pkMin,
    count: numberFlag('count', opts.count, 1, 100_000_000, true),
    seed: opts.seed === undefined ? undefined : numberFlag('seed', opts.seed, 0, 2 ** 32 - 1, true),
    suspiciousDelayScale: numberFlag('suspicious-delay-scale', opts.suspiciousDelayScale, 0, 100),
    latencyMs: numberFlag('latency-ms', opts.latencyMs, 0, 600_000),
    jitterMs: numberFlag('jitter-ms', opts.jitterMs, 0, 600_000),
    errorRate: rate('error-rate', 'errorRate'),
    rateLimitRate: rate('rate-limit-rate', 'rateLimitRate'),
    retryAfterS: numberFlag('retry-after', opts.retryAfter, 0, 3600, true),
    hangRate: rate('hang-rate', 'hangRate'),
    malformedRate: rate('malformed-rate', 'malformedRate'),
    badFieldRate: rate('bad-field-rate', 'badFieldRate'),
  };
  const log = createLogger(config.logLevel, 'mock');
  const server = await startMock(options);
  log.info(
    { url: server.url, pkMin: options.pkMin, count: options.count },
    `Mockstagram mock listening on ${server.url}`,
  );
  await untilSignal(log);
  await server.close();
  log.info(server.stats(), 'mock stopped');
  return 0;
}
