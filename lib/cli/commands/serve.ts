import { openApi } from '../../read/api.js';
import { numberFlag } from '../flags.js';
import type { Config } from '../../ops/config.js';
import { createLogger } from '../../shared/log.js';
import { describeUnreachable, unreachableServers } from '../../ops/preflight.js';
import { untilSignal } from '../../ops/signals.js';
import { ServiceNotifier } from '../../ops/notify.js';

/** `influencer-node serve`: the read API and the dashboard until SIGINT/SIGTERM. */
export async function serveCommand(config: Config, opts: Record<string, unknown>): Promise<number> {
  const host = opts.host === undefined ? config.serveHost : String(opts.host);
  const port = opts.port === undefined ? config.servePort : numberFlag('port', opts.port, 0, 65535, true);
  const log = createLogger(config.logLevel, 'serve');
  const down = await unreachableServers(config);
  if (down.length > 0) {
    for (const u of down) process.stderr.write(`influencer-node: ${describeUnreachable(u)}\n`);
    return 1;
  }
  const notifier = new ServiceNotifier(log);
  const api = await openApi(config, log, { host, port });
  log.info({ url: api.url, cluster: config.cluster }, 'API listening');
  process.stdout.write(`dashboard ${api.url}/  API ${api.url}/api/v1/stats\n`);
  notifier.ready(`serving ${api.url}`);
  notifier.startWatchdog();
  await untilSignal(log);
  notifier.stopping();
  await api.stop();
  notifier.stop();
  return 0;
}
