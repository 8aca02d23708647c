// The service contract: a stack stops its services in the reverse order of their start, a timer loop
// never overlaps itself and can be brought forward.
import t from 'tap';
import { PeriodicJob, ServiceStack, type Service } from '../../../lib/shared/services.js';
import { createLogger } from '../../../lib/shared/log.js';
import { sleep } from '../../kit/wait.js';

const log = createLogger('silent');

/** A service that records its start and stop in `events`. */
function recorded(events: string[], name: string, opts: { failStart?: boolean; failStop?: boolean } = {}): Service {
  return {
    start: async () => {
      await sleep(1);
      events.push(`start ${name}`);
      if (opts.failStart) throw new Error(`${name} cannot start`);
    },
    stop: async () => {
      events.push(`stop ${name}`);
      if (opts.failStop) throw new Error(`${name} cannot stop`);
    },
  };
}

t.test('ServiceStack: started in order, stopped in reverse, each once', async (t) => {
  const events: string[] = [];
  const stack = new ServiceStack(log);
  for (const name of ['a', 'b', 'c']) await stack.start(name, recorded(events, name));
  await Promise.all([stack.stopAll(), stack.stopAll()]);
  t.same(events, ['start a', 'start b', 'start c', 'stop c', 'stop b', 'stop a']);
  t.same(stack.history, { started: ['a', 'b', 'c'], stopped: ['c', 'b', 'a'] });
});

t.test('ServiceStack: a service that fails to stop does not keep the others running', async (t) => {
  const events: string[] = [];
  const stack = new ServiceStack(log);
  await stack.start('a', recorded(events, 'a'));
  await stack.start('b', recorded(events, 'b', { failStop: true }));
  await stack.start('c', recorded(events, 'c'));
  await stack.stopAll();
  t.same(events.slice(3), ['stop c', 'stop b', 'stop a']);
});

t.test('ServiceStack: a failed start is stopped and thrown; what started before stops with the stack', async (t) => {
  const events: string[] = [];
  const stack = new ServiceStack(log);
  await stack.start('a', recorded(events, 'a'));
  await t.rejects(stack.start('b', recorded(events, 'b', { failStart: true })), /b cannot start/);
  await stack.stopAll();
  t.same(events, ['start a', 'start b', 'stop b', 'stop a']);
});

t.test('ServiceStack: a start after the stop began, or overtaken by it, throws StackStopped', async (t) => {
  const events: string[] = [];
  const stack = new ServiceStack(log);
  await stack.start('a', recorded(events, 'a'));
  const starting = stack.start('slow', recorded(events, 'slow'));
  const stopped = stack.stopAll();
  await t.rejects(starting, { name: 'StackStopped' }, 'the start overtaken by the stop');
  await stopped;
  await t.rejects(stack.start('late', recorded(events, 'late')), { name: 'StackStopped' }, 'a start after the stop');
  t.same(
    events,
    ['start a', 'stop slow', 'stop a', 'start slow', 'stop late'],
    'every service stopped, the late one never started',
  );
});

t.test('PeriodicJob: runs after the previous run ended, never two at once', async (t) => {
  let running = 0;
  let overlapped = false;
  let runs = 0;
  const job = new PeriodicJob(
    async () => {
      running++;
      overlapped ||= running > 1;
      await sleep(30);
      running--;
      runs++;
    },
    { log, failure: 'failed', everyMs: 1 },
  );
  job.start();
  for (let i = 0; i < 20; i++) {
    job.runNow();
    job.runSoon(0);
    await sleep(5);
  }
  await job.stop();
  const after = runs;
  await sleep(60);
  t.notOk(overlapped, 'no run began while one was in progress');
  t.ok(after >= 2, `it ran (${after} runs)`);
  t.equal(running, 0, 'stop() waited for the run in progress');
  t.equal(runs, after, 'no run after stop()');
});

t.test('PeriodicJob: a synchronous run runs at once on runNow(); its result sets the next wait', async (t) => {
  const at: number[] = [];
  const job = new PeriodicJob(() => at.push(Date.now()), { log, failure: 'failed', everyMs: 10_000, next: () => 20 });
  job.start();
  job.runNow();
  t.equal(at.length, 1, 'ran before runNow() returned');
  await sleep(200);
  await job.stop();
  t.ok(at.length >= 4, `run again every 20 ms as its result said, not every 10 s (${at.length} runs)`);
});

t.test('PeriodicJob: runSoon() brings the next run forward, never back', async (t) => {
  let runs = 0;
  const job = new PeriodicJob(() => runs++, { log, failure: 'failed', everyMs: 10_000, firstAfterMs: 10_000 });
  job.start();
  job.runSoon(20);
  job.runSoon(5_000);
  await sleep(150);
  t.equal(runs, 1, 'the run asked for in 20 ms came, once; the later ask did not postpone it');
  await job.stop();
});

t.test('PeriodicJob: a failing run is logged once per distinct error and retried', async (t) => {
  const lines: string[] = [];
  const logger = createLogger('warn');
  const warn = logger.warn.bind(logger);
  logger.warn = ((obj: unknown, msg?: string) => {
    lines.push(`${msg}: ${(obj as { err: string }).err}`);
    return warn;
  }) as typeof logger.warn;
  let runs = 0;
  const job = new PeriodicJob(
    () => {
      runs++;
      throw new Error(runs < 5 ? 'down' : 'other');
    },
    { log: logger, failure: 'the job failed', everyMs: 5 },
  );
  job.start();
  await sleep(150);
  await job.stop();
  t.ok(runs >= 6, `retried after each failure (${runs} runs)`);
  t.same(lines, ['the job failed: down', 'the job failed: other']);
});

t.test('PeriodicJob: nothing runs before start() or after stop()', async (t) => {
  let runs = 0;
  const job = new PeriodicJob(() => runs++, { log, failure: 'failed', everyMs: 1 });
  job.runNow();
  job.runSoon(0);
  await sleep(20);
  t.equal(runs, 0, 'not started');
  job.start();
  await sleep(20);
  await job.stop();
  const after = runs;
  job.runNow();
  job.runSoon(0);
  await sleep(20);
  t.ok(after > 0);
  t.equal(runs, after, 'stopped');
});
