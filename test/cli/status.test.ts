// `influencer-node status` against three real `influencer-node start` processes: the table, --json,
// --pk (agreeing with the ring and with the ownership sweep the nodes use), unreadable member
// keys, an empty cluster, Redis unreachable, bad input, and --watch stopped by Ctrl-C.
import t from 'tap';
import { nodeKey } from '../../lib/shared/keys.js';
import { readMembers } from '../../lib/cluster/member-view.js';
import { ownedBy } from '../../lib/ring/ownership.js';
import { PkUniverse } from '../../lib/ring/pk-universe.js';
import { Ring } from '../../lib/ring/ring.js';
import { ownerOfPk, readStatus, type ClusterStatus } from '../../lib/cluster/status.js';
import { runCli, spawnCli } from '../helpers/cli.js';
import { waitExit } from '../kit/children.js';
import { startCluster, PK_MIN, type TestCluster } from '../helpers/cluster.js';
import { sleep, until } from '../kit/wait.js';
import { freePort } from '../kit/servers.js';

const PKS = 300;
const IDS = ['a', 'b', 'c'];

t.test('status of a running three-node cluster', async (t) => {
  const c: TestCluster = await startCluster(t, { pks: PKS, intervalMs: 2000, ttlMs: 1500 });
  for (const id of IDS) c.spawnNode(id);
  const config = c.config('status-test');
  const readyIn = await until(
    async () => {
      const s = await readStatus(c.redis, config);
      const owned = s.members.reduce((sum, m) => sum + Number(m.stats?.owned ?? 0), 0);
      return s.summary.active === 3 && s.summary.viewsAgree && owned === PKS;
    },
    30_000,
    'three active members that agree and own every pk',
  );
  t.comment(`three nodes ready in ${readyIn} ms`);

  t.test('table: one row per member, then the summary', async (t) => {
    const r = await runCli(['status'], c.env);
    t.equal(r.code, 0, 'exit 0');
    t.equal(r.stderr, '', 'nothing on stderr');
    const lines = r.stdout.split('\n');
    t.match(
      lines[0],
      new RegExp(`^cluster ${c.svc.cluster}  pks ${PK_MIN}\\.\\.${PK_MIN + PKS - 1} \\(${PKS}\\)`),
      'header names cluster and universe',
    );
    const headerLine = lines.find((l) => l.startsWith('ID '))!;
    const header = headerLine.split(/\s+/);
    t.same(header.slice(0, 10), [
      'ID',
      'HOST',
      'PID',
      'VERSION',
      'STATE',
      'UPTIME',
      'HEARTBEAT',
      'WEIGHT',
      'SHARE',
      'OWNED',
    ]);
    // columns are padded to the header: cut each row at the header's column starts
    const starts = [...headerLine.matchAll(/\S+/g)].map((m) => m.index!);
    const rows = lines
      .filter((l) => /^[abc] /.test(l))
      .map((l) => starts.map((s, i) => l.slice(s, starts[i + 1]).trim()));
    t.same(
      rows.map((r) => r[0]),
      IDS,
      'one row per member, sorted by id',
    );
    let owned = 0;
    for (const row of rows) {
      const cell = (name: string): string => row[header.indexOf(name)];
      t.match(cell('HEARTBEAT'), /^\d+(\.\d)?s ago$/, `${row[0]} heartbeat ${cell('HEARTBEAT')}`);
      t.equal(cell('STATE'), 'active', `${row[0]} active`);
      t.match(cell('SHARE'), /^\d+\.\d%$/, `${row[0]} share ${cell('SHARE')}`);
      t.match(cell('OWNED'), /^\d+$/, `${row[0]} owns ${cell('OWNED')}`);
      t.ok(Number(cell('OWNED')) > 0);
      t.match(cell('PID'), /^\d+$/);
      owned += Number(cell('OWNED'));
    }
    t.equal(owned, PKS, 'owned adds up to the universe');
    const summary = lines.find((l) => l.startsWith('members '));
    t.match(
      summary,
      /^members 3 \(3 active\) {2}balance [\d.]+ \(max\/mean owned\) {2}ring view [0-9a-f]{8} \(all agree\)$/,
      'summary: 3 active, views agree',
    );
    t.match(r.stdout, /^unhealthy: none$/m);
  });

  t.test('--json: three members, shares summing to 100 %, owned summing to the universe', async (t) => {
    const r = await runCli(['status', '--json'], c.env);
    t.equal(r.code, 0);
    const s = JSON.parse(r.stdout) as ClusterStatus;
    t.equal(s.cluster, c.svc.cluster);
    t.same(s.universe, { pkMin: PK_MIN, pkMax: PK_MIN + PKS - 1, size: PKS });
    t.same(
      s.members.map((m) => m.id),
      IDS,
    );
    t.ok(
      s.members.every((m) => m.readable && m.state === 'active' && m.healthy),
      'all readable, active, healthy',
    );
    const share = s.members.reduce((sum, m) => sum + (m.sharePct ?? 0), 0);
    t.ok(Math.abs(share - 100) <= 0.05, `shares sum to ${share}`);
    t.equal(
      s.members.reduce((sum, m) => sum + Number(m.stats?.owned), 0),
      PKS,
      'owned sums to the universe',
    );
    t.equal(s.summary.active, 3);
    t.ok(s.summary.viewsAgree, 'views agree');
    t.ok(
      s.members.every((m) => m.view === s.summary.ringView),
      'every card shows the ring view',
    );
  });

  t.test("--pk: names the owner the ring and the nodes' ownership sweep agree on", async (t) => {
    const cards = await readMembers(c.redis, c.svc.cluster);
    const ring = new Ring(cards.flatMap((x) => (x.ok ? [{ id: x.card.id, weight: x.card.weight }] : [])));
    const universe = new PkUniverse(PK_MIN, PK_MIN + PKS - 1);
    const owned = new Map(IDS.map((id) => [id, new Set(ownedBy(universe, ring, id).pks)]));
    const disagree: number[] = [];
    for (let pk = PK_MIN; pk < PK_MIN + PKS; pk++) {
      const expected = ring.ownerOf(pk)!;
      if (!owned.get(expected)!.has(pk)) disagree.push(pk);
      // ownerOfPk reads Redis and builds a ring per call: every 10th pk is enough
      else if (pk % 10 === 0 && (await ownerOfPk(c.redis, config, pk)).owner !== expected) disagree.push(pk);
    }
    t.same(disagree, [], 'ring lookup, ownership sweep (every pk) and ownerOfPk (every 10th) name the same member');
    for (const pk of [PK_MIN + 17]) {
      const expected = ring.ownerOf(pk)!;
      const r = await runCli(['status', '--pk', String(pk)], c.env);
      t.equal(r.code, 0);
      t.match(
        r.stdout,
        new RegExp(
          `^pk ${pk} → ${expected}\\n  md5 hash ${ring.hashOf(pk)} → first ring point at or after it: #\\d+ \\(\\d+\\), owned by ${expected}; 3 active members\\n$`,
        ),
        `status --pk ${pk} says ${expected}`,
      );
    }
    const pk = PK_MIN + 150;
    const j = await runCli(['status', '--pk', String(pk), '--json'], c.env);
    t.equal(j.code, 0);
    t.match(JSON.parse(j.stdout), { pk, hash: ring.hashOf(pk), owner: ring.ownerOf(pk), members: 3 }, '--pk --json');
  });

  t.test('--pk outside the universe or not a number: usage error (exit 2)', async (t) => {
    for (const bad of [String(PK_MIN - 1), 'abc']) {
      const r = await runCli(['status', '--pk', bad], c.env);
      t.equal(r.code, 2, `--pk ${bad}: exit 2`);
      t.equal(r.stderr.trim().split('\n').length, 1, 'one line on stderr');
      t.match(r.stderr, /--pk/);
    }
  });

  t.test('a garbage member key is shown as unreadable, exit 0', async (t) => {
    const key = nodeKey(c.svc.cluster, 'junk');
    await c.redis.set(key, 'not json', 'PX', 60_000);
    t.teardown(() => c.redis.del(key).then(() => undefined));
    const r = await runCli(['status'], c.env);
    t.equal(r.code, 0, 'exit 0');
    t.match(r.stdout, /^junk\s+-\s+-\s+-\s+unreadable: not JSON/m, 'row says unreadable and why');
    t.match(r.stdout, /^members 4 \(3 active\)/m, 'counted, not active');
    t.match(r.stdout, /unreadable: junk/, 'named in the summary');
    t.match(r.stdout, /\(all agree\)/, 'the live members still agree');
    const j = await readStatus(c.redis, config); // what --json prints
    t.match(
      j.members.find((m) => m.id === 'junk'),
      { readable: false, error: 'not JSON' },
    );
    t.same(j.summary.unreadable, ['junk']);
  });

  t.test('--watch refreshes until SIGINT, then exits 0', async (t) => {
    const child = spawnCli(['status', '--watch'], c.env);
    t.teardown(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    // into a pipe: one full view after another, no terminal escapes (test/cli/cli-scripting.test.ts has the terminal)
    const refreshes = (): number => child.output().match(/^members \d+ \(\d+ active\)/gm)?.length ?? 0;
    await until(() => refreshes() >= 2 || child.exitCode !== null, 20_000, 'two refreshes');
    await sleep(500);
    child.kill('SIGINT');
    t.equal(await waitExit(child, 10_000), 0, 'exit 0 on SIGINT');
    t.ok(refreshes() >= 2, `${refreshes()} refreshes`);
    t.notOk(child.output().includes(String.fromCharCode(27)), 'no escape sequence into a pipe');
    const last = child
      .output()
      .split(/^cluster /m)
      .pop()!;
    t.match(last, /^members 3 \(3 active\)/m, 'each refresh is a full table');
  });
});

t.test('no members at all: says so, exit 0', async (t) => {
  const c = await startCluster(t, { pks: PKS, intervalMs: 2000, ttlMs: 1500 });
  const r = await runCli(['status'], c.env);
  t.equal(r.code, 0);
  t.equal(r.stdout, `cluster ${c.svc.cluster}: no members (no node is running, or CLUSTER names another cluster)\n`);
  const j = await runCli(['status', '--json'], c.env);
  t.equal(j.code, 0);
  t.match(JSON.parse(j.stdout), { members: [], summary: { members: 0, active: 0, viewsAgree: true } });
  const p = await runCli(['status', '--pk', String(PK_MIN)], c.env);
  t.equal(p.code, 0);
  t.equal(p.stdout, `pk ${PK_MIN}: no active members in cluster ${c.svc.cluster}\n`);
});

t.test('Redis unreachable: one line on stderr naming the cause, exit 1, no password shown', async (t) => {
  const port = await freePort();
  for (const args of [['status'], ['status', '--pk', String(PK_MIN)]]) {
    const r = await runCli(args, { CLUSTER: 'nowhere', REDIS_URL: `redis://:s3cret@127.0.0.1:${port}` }, 20_000);
    t.equal(r.code, 1, `${args.join(' ')}: exit 1`);
    t.equal(r.stdout, '', 'nothing on stdout');
    const lines = r.stderr.trim().split('\n');
    t.equal(lines.length, 1, `one line on stderr: ${lines[0]}`);
    t.match(
      lines[0],
      new RegExp(`^influencer-node: Redis unreachable at redis://.*127\\.0\\.0\\.1:${port}.*ECONNREFUSED`),
    );
    t.notMatch(r.stderr, /s3cret/, 'password masked');
  }
});
