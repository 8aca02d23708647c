// ClusterLock (redlock) on a real Redis: two holders never overlap, a long job keeps its lock past
// the TTL, a lost lock aborts the job's signal at once, and a holder SIGKILLed while holding the
// lock loses it when its TTL runs out, so another node can take it.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import t from 'tap';
import type { Redis } from 'ioredis';
import { ClusterLock } from '../../../lib/cluster/locks.js';
import { createLogger } from '../../../lib/shared/log.js';
import { connectRedis, createRedis } from '../../../lib/shared/redis.js';
import { ROOT, waitExit } from '../../kit/children.js';
import { freePort, startRedis, type Server } from '../../kit/servers.js';
import { sleep } from '../../kit/wait.js';

const log = createLogger('silent');

let server: Server;
const connections: Redis[] = [];
t.before(async () => {
  server = await startRedis();
});
t.teardown(async () => {
  for (const r of connections) r.disconnect();
  await server.stop();
});

async function connect(name: string, url = server.url): Promise<Redis> {
  const redis = createRedis(url, log, name);
  connections.push(redis);
  await connectRedis(redis, url, log);
  return redis;
}

/** Lua script calls Redis has run so far (redlock's acquire, extend and release are scripts). */
async function lockScriptCalls(redis: Redis): Promise<number> {
  const info = await redis.info('commandstats');
  return [...info.matchAll(/^cmdstat_(?:evalsha|eval):calls=(\d+)/gm)].reduce((n, m) => n + Number(m[1]), 0);
}

const cluster = (): string => `t${randomBytes(4).toString('hex')}`;

t.test('two holders on two connections never run the job at the same time, and both get turns', async (t) => {
  const name = cluster();
  const locks = [
    new ClusterLock(await connect('a'), name, log, 1000),
    new ClusterLock(await connect('b'), name, log, 1000),
  ];
  const runs: Array<{ who: number; enter: number; exit: number }> = [];
  let inside = 0;
  let maxInside = 0;
  const worker = async (who: number): Promise<number> => {
    let ran = 0;
    for (let attempt = 0; attempt < 10; attempt++) {
      const r = await locks[who].runExclusive('retention', async () => {
        inside++;
        maxInside = Math.max(maxInside, inside);
        const enter = performance.now();
        await sleep(300);
        runs.push({ who, enter, exit: performance.now() });
        inside--;
      });
      if (r.ran) ran++;
      // the holder steps back a little longer than the other retries, so turns change hands
      await sleep(r.ran ? 150 : 60 + Math.floor(Math.random() * 40));
    }
    return ran;
  };
  const ran = await Promise.all([worker(0), worker(1)]);
  runs.sort((x, y) => x.enter - y.enter);
  const overlaps = runs.filter((r, i) => i > 0 && r.enter < runs[i - 1].exit);
  t.equal(maxInside, 1, 'never two jobs inside at once');
  t.same(overlaps, [], `no overlap among ${runs.length} runs`);
  t.ok(ran[0] >= 1 && ran[1] >= 1, `both ran (a ${ran[0]}, b ${ran[1]} of 10 attempts each)`);
  t.equal(runs.length, ran[0] + ran[1], 'every run reported ran: true');
});

t.test('a job longer than the TTL keeps its lock (extended) and its signal is not aborted', async (t) => {
  const name = cluster();
  const ttl = 600;
  const a = new ClusterLock(await connect('a'), name, log, ttl);
  const b = new ClusterLock(await connect('b'), name, log, ttl);
  let taken = 0;
  let tries = 0;
  const result = await a.runExclusive('index', async (signal) => {
    const end = Date.now() + 4 * ttl;
    while (Date.now() < end) {
      const r = await b.runExclusive('index', async () => undefined);
      tries++;
      if (r.ran) taken++;
      await sleep(50);
    }
    return signal.aborted ? 'aborted' : 'done';
  });
  t.same(result, { ran: true, result: 'done' }, 'the job finished with its signal intact');
  t.equal(taken, 0, `nobody else took the lock during the job (${tries} tries over 4 TTLs)`);
  t.same(await b.runExclusive('index', async () => 'b'), { ran: true, result: 'b' }, 'released at once after the job');
});

t.test(
  'a lost lock (key deleted, another holder) aborts the job signal within an extension period; the job still counts as run',
  async (t) => {
    const name = cluster();
    const ttl = 900;
    const redis = await connect('a');
    const a = new ClusterLock(redis, name, log, ttl);
    const b = new ClusterLock(await connect('b'), name, log, ttl);
    let abortedAfter = -1;
    let bRan = false;
    const result = await a.runExclusive('singleton', async (signal) => {
      await redis.del(a.key('singleton')); // as after a Redis flush
      const lostAt = Date.now();
      bRan = (
        await b.runExclusive('singleton', async () => {
          await sleep(2 * ttl);
        })
      ).ran;
      if (!signal.aborted) await new Promise((r) => signal.addEventListener('abort', r, { once: true }));
      abortedAfter = Date.now() - lostAt;
      return 'stopped';
    });
    t.ok(bRan, 'another holder took the freed lock');
    t.same(result, { ran: true, result: 'stopped' }, 'the job ran: a failed release is not "did not run"');
    t.ok(abortedAfter >= 0, `signal aborted ${abortedAfter} ms after the loss`);
  },
);

t.test('the signal aborts promptly when the lock is lost while the job runs', async (t) => {
  const name = cluster();
  const ttl = 3000;
  const redis = await connect('a');
  const a = new ClusterLock(redis, name, log, ttl);
  let abortedAfter = -1;
  let scriptCalls = -1;
  let otherValue: string | null = null;
  await a.runExclusive('singleton', async (signal) => {
    await redis.set(a.key('singleton'), 'someone-else', 'PX', ttl);
    const lostAt = Date.now();
    const before = await lockScriptCalls(redis);
    const deadline = Date.now() + 2 * ttl;
    while (!signal.aborted && Date.now() < deadline) await sleep(20);
    abortedAfter = signal.aborted ? Date.now() - lostAt : -1;
    otherValue = await redis.get(a.key('singleton'));
    await sleep(ttl); // the lost lock is not retried after the abort
    scriptCalls = (await lockScriptCalls(redis)) - before;
  });
  // extension runs every TTL/3: the loss is seen at the next one, not when the TTL would end
  t.ok(
    abortedAfter >= 0 && abortedAfter <= ttl / 3 + 1000,
    `aborted ${abortedAfter} ms after the loss (TTL ${ttl} ms)`,
  );
  t.ok(
    scriptCalls >= 1 && scriptCalls <= 5,
    `the failed extension is not retried in a loop (${scriptCalls} lock script calls)`,
  );
  t.equal(otherValue, 'someone-else', "the other holder's lock is left alone");
});

t.test('a job that throws: the error propagates and the lock is released', async (t) => {
  const name = cluster();
  const a = new ClusterLock(await connect('a'), name, log, 1000);
  const b = new ClusterLock(await connect('b'), name, log, 1000);
  await t.rejects(
    a.runExclusive('job', async () => {
      throw new Error('boom');
    }),
    /boom/,
  );
  t.same(await b.runExclusive('job', async () => 1), { ran: true, result: 1 }, 'free at once');
});

t.test(
  'Redis unreachable: runExclusive rejects with a clear error instead of claiming another node holds the lock',
  async (t) => {
    const url = `redis://127.0.0.1:${await freePort()}`;
    const redis = createRedis(url, log, 'down');
    connections.push(redis);
    redis.connect().catch(() => undefined);
    const a = new ClusterLock(redis, cluster(), log, 1000);
    let ran = false;
    await t.rejects(
      a.runExclusive('job', async () => {
        ran = true;
      }),
      /^could not take the lock t[0-9a-f]+:lock:job \(Redis: .+\)$/,
    );
    t.notOk(ran, 'the job did not run');
  },
);

t.test('holder SIGKILLed while holding the lock: it expires after its TTL and another node takes it', async (t) => {
  const name = cluster();
  const ttl = 1500;
  const dist = (f: string): string => pathToFileURL(join(ROOT, 'dist', 'lib', f)).href;
  const code = `
    import { ClusterLock } from ${JSON.stringify(dist('cluster/locks.js'))};
    import { createLogger } from ${JSON.stringify(dist('shared/log.js'))};
    import { connectRedis, createRedis } from ${JSON.stringify(dist('shared/redis.js'))};
    const log = createLogger('silent');
    const redis = createRedis(${JSON.stringify(server.url)}, log, 'holder');
    await connectRedis(redis, ${JSON.stringify(server.url)}, log);
    const lock = new ClusterLock(redis, ${JSON.stringify(name)}, log, ${ttl});
    const r = await lock.runExclusive('retention', async () => {
      process.stdout.write('held\\n');
      await new Promise(() => {});
    });
    process.stdout.write(JSON.stringify(r) + '\\n');
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', code], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let out = '';
  child.stdout.on('data', (d) => {
    out += d;
  });
  child.stderr.on('data', (d) => {
    out += d;
  });
  const deadline = Date.now() + 20_000;
  while (!out.includes('held')) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`holder did not take the lock: ${out}`);
    await sleep(20);
  }
  // hold it past one TTL: the holder's extensions must keep it
  await sleep(ttl + 300);
  const other = new ClusterLock(await connect('other'), name, log, ttl);
  t.same(
    await other.runExclusive('retention', async () => 'x'),
    { ran: false },
    'the live holder keeps its lock past its TTL',
  );
  child.kill('SIGKILL');
  await waitExit(child);
  const killedAt = Date.now();
  t.same(await other.runExclusive('retention', async () => 'x'), { ran: false }, 'still held right after the kill');
  let took = -1;
  while (Date.now() - killedAt < ttl + 5000) {
    const r = await other.runExclusive('retention', async () => 'x');
    if (r.ran) {
      took = Date.now() - killedAt;
      break;
    }
    await sleep(50);
  }
  t.ok(took >= 0 && took <= ttl + 1000, `taken ${took} ms after the kill (TTL ${ttl} ms + 1 s allowed)`);
});
