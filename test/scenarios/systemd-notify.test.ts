// What systemd relies on with Type=notify: READY=1 only once the node is active and owns its share,
// WATCHDOG=1 while it runs, STOPPING=1 when it leaves; a rolling restart that waits for READY=1
// alone misses nothing; a restarted node takes over its own stale card instead of waiting for its TTL.
// systemd itself does not run here: a fake NOTIFY_SOCKET (an AF_UNIX datagram socket) listens instead.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { DgramSocket } from 'node-unix-socket';
import type { MemberCard } from '../../lib/cluster/card.js';
import { staleOwnCard, systemdUnit, type ProcessPlace } from '../../lib/cluster/own-card.js';
import { watchdogMs } from '../../lib/ops/notify.js';
import { checkStore, range, startCluster, PK_MIN } from '../helpers/cluster.js';
import { intervalStart, sleep, until } from '../kit/wait.js';
import { stopChild, waitExit } from '../kit/children.js';
import { freePort, type Owner } from '../kit/servers.js';

interface Notice {
  at: number;
  fields: Record<string, string>;
}

/** A stand-in for systemd's notification socket: every datagram received, parsed into its fields. */
interface FakeSystemd {
  path: string;
  notices: Notice[];
  /** the first notice at or after `after` that sets `key` */
  next: (key: string, after?: number) => Promise<Notice>;
}

function fakeSystemd(t: Owner, name: string): FakeSystemd {
  const dir = mkdtempSync(join(tmpdir(), 'notify-'));
  const path = join(dir, `${name}.sock`);
  const notices: Notice[] = [];
  const socket = new DgramSocket();
  socket.on('data', (buf: Buffer) => {
    const fields = Object.fromEntries(
      buf
        .toString()
        .split('\n')
        .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
    );
    notices.push({ at: Date.now(), fields });
  });
  socket.bind(path);
  t.teardown(() => {
    socket.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const next = async (key: string, after = 0): Promise<Notice> => {
    await until(() => notices.some((n) => n.at >= after && key in n.fields), 60_000, `${key} from ${name}`);
    return notices.find((n) => n.at >= after && key in n.fields)!;
  };
  return { path, notices, next };
}

async function httpStatus(url: string): Promise<number> {
  try {
    return (await fetch(url)).status;
  } catch {
    return 0;
  }
}

t.test('the watchdog period and the unit come from what systemd sets', async (t) => {
  t.equal(watchdogMs({}), undefined, 'no WatchdogSec: no pings');
  t.equal(watchdogMs({ WATCHDOG_USEC: '30000000' }), 30_000);
  t.equal(watchdogMs({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: String(process.pid) }), 30_000);
  t.equal(watchdogMs({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: '1' }), undefined, 'meant for another process');
  t.equal(watchdogMs({ WATCHDOG_USEC: 'soon' }), undefined);
  const cgroup = '0::/system.slice/system-influencer\\x2dnode.slice/influencer-node@3.service\n';
  t.equal(systemdUnit({ INVOCATION_ID: 'abc' }, cgroup), 'influencer-node@3.service');
  t.equal(systemdUnit({}, cgroup), undefined, 'not started by systemd: no unit');
  t.equal(systemdUnit({ INVOCATION_ID: 'abc' }, '0::/user.slice/session-2.scope\n'), undefined);
});

t.test('a card is a stale card of this node only on the same host and unit with its process gone', async (t) => {
  const self: ProcessPlace = { host: 'h1', boot: 'b1', unit: 'influencer-node@1.service', pid: 200 };
  const card = { id: 'h1-1', host: 'h1', boot: 'b1', unit: 'influencer-node@1.service', pid: 100 } as MemberCard;
  const dead = (): boolean => false;
  const alive = (): boolean => true;
  t.match(staleOwnCard(card, self, dead), /pid 100 on h1 \(influencer-node@1\.service\) is gone/);
  t.equal(staleOwnCard(card, self, alive), undefined, 'its process still runs: never displaced');
  t.equal(staleOwnCard({ ...card, host: 'h2' }, self, dead), undefined, 'another host');
  t.equal(staleOwnCard({ ...card, unit: 'influencer-node@2.service' }, self, dead), undefined, 'another unit');
  t.equal(staleOwnCard({ ...card, unit: undefined }, self, dead), undefined, 'run by hand, not by this unit');
  t.equal(staleOwnCard({ ...card, pid: 200 }, self, dead), undefined, 'this very process');
  t.match(
    staleOwnCard({ ...card, boot: 'b0' }, self, alive),
    /has restarted/,
    'an earlier boot: stale whatever runs now',
  );
});

t.test(
  'notify protocol: READY=1 once active and owning, WATCHDOG=1 while running, STOPPING=1 on SIGTERM',
  async (t) => {
    const pks = 200;
    const c = await startCluster(t, { pks, intervalMs: 1000, ttlMs: 1500 });
    const port = await freePort();
    const systemd = fakeSystemd(t, 'n1');
    const node = c.spawnNode('n1', {
      NOTIFY_SOCKET: systemd.path,
      WATCHDOG_USEC: '1000000',
      METRICS_PORT: String(port),
    });
    const ready = await systemd.next('READY');
    // at READY=1 the node must already be what systemctl start promises: ready, owning every pk
    const [readyz, metrics] = await Promise.all([
      httpStatus(`http://127.0.0.1:${port}/readyz`),
      fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text()),
    ]);
    t.equal(readyz, 200, '/readyz is 200 when READY=1 arrives');
    t.match(metrics, new RegExp(`^influencer_owned_pks ${pks}$`, 'm'), 'it owns every pk when READY=1 arrives');
    t.equal(ready.fields.READY, '1');
    t.equal(ready.fields.MAINPID, String(node.pid), 'MAINPID names the node process');
    t.match(ready.fields.STATUS, /^active: owns 200 pks, 1 members$/);
    t.ok(
      systemd.notices.filter((n) => n.at < ready.at).every((n) => !('READY' in n.fields)),
      'no READY=1 before it',
    );

    // WATCHDOG_USEC=1 s: a ping every half of it; count a few
    await until(() => systemd.notices.filter((n) => n.fields.WATCHDOG === '1').length >= 3, 30_000, '3 watchdog pings');
    t.pass('WATCHDOG=1 repeats while the node runs');

    const stopAt = Date.now();
    node.kill('SIGTERM');
    const stopping = await systemd.next('STOPPING', stopAt);
    t.equal(stopping.fields.STOPPING, '1');
    t.equal(await waitExit(node), 0, 'exit 0 after the graceful stop');
    t.ok(
      systemd.notices
        .filter((n) => n.at > stopping.at)
        .every((n) => !('READY' in n.fields) && !('WATCHDOG' in n.fields)),
      'neither READY nor WATCHDOG after STOPPING',
    );
  },
);

t.test('without NOTIFY_SOCKET a node runs as before and sends nothing', async (t) => {
  const c = await startCluster(t, { pks: 50, intervalMs: 1000, ttlMs: 1500 });
  const port = await freePort();
  const node = c.spawnNode('plain', { METRICS_PORT: String(port), NOTIFY_SOCKET: '' });
  await until(async () => (await httpStatus(`http://127.0.0.1:${port}/readyz`)) === 200, 60_000, 'ready');
  t.equal(await stopChild(node), 0);
});

t.test('a rolling restart that waits for READY=1 alone (what systemctl restart does) misses no interval', async (t) => {
  const pks = 300;
  // 2 s, as the graceful-stop test and the chaos suite: a 1 s interval is too tight on a busy 2-core machine
  const intervalMs = 2000;
  const c = await startCluster(t, { pks, intervalMs, ttlMs: 1500 });
  const ids = ['r1', 'r2', 'r3'];
  const socket = Object.fromEntries(ids.map((id) => [id, fakeSystemd(t, id)]));
  const nodes = new Map(ids.map((id) => [id, c.spawnNode(id, { NOTIFY_SOCKET: socket[id].path })]));
  for (const id of ids) await socket[id].next('READY');
  const from = intervalStart(Date.now(), intervalMs) + 2 * intervalMs;
  await sleep(from - Date.now() + intervalMs);

  for (const id of ids) {
    // systemctl restart: SIGTERM, wait for the exit, start again, wait for READY=1; then the next unit
    t.equal(await stopChild(nodes.get(id)!), 0, `${id} stopped gracefully`);
    const startedAt = Date.now();
    nodes.set(id, c.spawnNode(id, { NOTIFY_SOCKET: socket[id].path }));
    await socket[id].next('READY', startedAt);
  }
  const to = intervalStart(Date.now(), intervalMs) + intervalMs;
  await sleep(to - Date.now() + 3 * intervalMs);
  const check = await checkStore(c, range(PK_MIN, pks), intervalMs, from, to);
  t.equal(check.gaps.length, 0, `no (pk, interval) missed over ${(to - from) / intervalMs} intervals`, {
    gaps: check.gaps.slice(0, 10),
  });
  t.equal(check.duplicates, 0, 'no point stored twice');
  for (const node of nodes.values()) t.equal(await stopChild(node), 0);
});

t.test('a restarted node takes over its own stale card instead of waiting for the TTL', async (t) => {
  const ttlMs = 60_000;
  const c = await startCluster(t, { pks: 100, intervalMs: 1000, ttlMs });
  const systemd = fakeSystemd(t, 'k1');
  const first = c.spawnNode('k1', { NOTIFY_SOCKET: systemd.path });
  await systemd.next('READY');

  // the same id on the same host while its process lives: refused
  const twin = c.spawnNode('k1');
  t.equal(await waitExit(twin), 1, 'a live holder of the id is not displaced');
  t.match(twin.output(), /NODE_ID k1 is already in use/);

  const killedAt = Date.now();
  first.kill('SIGKILL');
  await waitExit(first);
  const restarted = c.spawnNode('k1', { NOTIFY_SOCKET: systemd.path });
  await systemd.next('READY', killedAt);
  t.ok(Date.now() - killedAt < ttlMs, 'READY=1 came while the old card still had its TTL to run');
  t.match(
    restarted.output(),
    new RegExp(`took over this node's stale member card: pid ${first.pid} on ${hostname()} is gone`),
  );
  const card = JSON.parse((await c.redis.get(`${c.svc.cluster}:node:k1`))!) as MemberCard;
  t.equal(card.pid, restarted.pid, 'the card is the new process');
  t.equal(card.state, 'active');
  t.equal(await stopChild(restarted), 0);
});
