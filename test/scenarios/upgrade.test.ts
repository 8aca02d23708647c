// A running cluster of the previous version (one Redis hash per pk, cluster-wide sorted sets)
// upgraded by a rolling restart to per-slice keys: while nodes of both versions run, the new ones
// log and leave their samples to the previous ones' period close; when the last previous node has
// gone, one new node deletes the previous layout's keys and the slices are rebuilt from MongoDB.
// No interval is lost and nothing is counted twice. The previous version is built from this
// repository's history (git archive of its last commit, compiled with this checkout's TypeScript).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { readMembers } from '../../lib/cluster/member-view.js';
import { clusterKeys, KEYSPACE_LAYOUT, legacyKeys } from '../../lib/shared/keys.js';
import { totalsState } from '../../lib/storage/state/totals-state.js';
import { ROOT, stopChild } from '../kit/children.js';
import { checkStore, range, startCluster, PK_MIN } from '../helpers/cluster.js';
import { intervalStart, sleep, until } from '../kit/wait.js';

/** The last commit of the previous key layout. */
const PREVIOUS = 'd6f23aa';
const PKS = 600;
const INTERVAL = 2000;

/** The previous version, built once per machine into a temp dir; its CLI's path. */
function previousVersion(): string {
  const dir = join(tmpdir(), `influencer-node-${PREVIOUS}`);
  const bin = join(dir, 'bin', 'influencer-node.js');
  if (existsSync(join(dir, 'dist', 'lib', 'cli', 'cli.js'))) return bin;
  try {
    execFileSync('git', ['-C', ROOT, 'cat-file', '-e', `${PREVIOUS}^{commit}`], { stdio: 'ignore' });
  } catch {
    throw new Error(`commit ${PREVIOUS} (the previous version) is not in this clone: git fetch --unshallow`);
  }
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  execFileSync('sh', ['-c', `git -C "${ROOT}" archive ${PREVIOUS} | tar -x -C "${dir}"`]);
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  execFileSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', dir], {
    stdio: 'inherit',
  });
  return bin;
}

t.test('a rolling restart from the previous key layout: nothing lost, nothing counted twice', async (t) => {
  const previous = previousVersion();
  const c = await startCluster(t, { pks: PKS, intervalMs: INTERVAL, ttlMs: 1500 });
  const members = async (): Promise<Array<{ id: string; keyspace?: number }>> =>
    (await readMembers(c.redis, c.svc.cluster)).flatMap((x) =>
      x.ok && x.card.state === 'active' ? [{ id: x.card.id, keyspace: x.card.keyspace }] : [],
    );
  const owners = async (ids: string[], keyspace: (id: string) => number | undefined): Promise<boolean> => {
    const now = await members();
    return now.length === ids.length && ids.every((id) => now.some((m) => m.id === id && m.keyspace === keyspace(id)));
  };

  const a = c.spawnNode('a', {}, previous);
  const b = c.spawnNode('b', {}, previous);
  await until(() => owners(['a', 'b'], () => undefined), 60_000, 'two nodes of the previous version');
  t.equal(await c.redis.exists(legacyKeys(c.svc.cluster).since), 1, 'the previous layout is in force');
  // the previous version made the database's layout: its slice count stays
  await c.useStoredLayout();
  const from = intervalStart(Date.now(), INTERVAL) + INTERVAL;
  // a period closed by the previous version's nodes before the upgrade begins
  await sleep(6 * INTERVAL);

  t.equal(await stopChild(a), 0, 'a of the previous version stops gracefully');
  const a2 = c.spawnNode('a');
  await until(
    () => owners(['a', 'b'], (id) => (id === 'a' ? KEYSPACE_LAYOUT : undefined)),
    60_000,
    'a of this version',
  );
  t.equal(await c.redis.get(clusterKeys(c.svc.cluster).keyspace), null, 'both versions run: the previous layout stays');
  // both versions together across a period's close
  await sleep(12 * INTERVAL);

  t.equal(await stopChild(b), 0, 'b of the previous version stops gracefully');
  const b2 = c.spawnNode('b');
  await until(
    async () => (await c.redis.get(clusterKeys(c.svc.cluster).keyspace)) === String(KEYSPACE_LAYOUT),
    60_000,
    'the switch to per-slice keys once the last previous node has gone',
  );
  await until(
    async () => (await totalsState(c.redis, c.svc.cluster, c.totals.slices)) === 'ready',
    60_000,
    'the slices rebuilt from MongoDB',
  );
  t.equal(await c.redis.exists(legacyKeys(c.svc.cluster).since), 0, "the previous layout's keys are gone");
  // a period closed by this version's nodes after the switch
  await sleep(12 * INTERVAL);
  const to = intervalStart(Date.now(), INTERVAL);
  t.same(await Promise.all([stopChild(a2), stopChild(b2)]), [0, 0], 'this version stops gracefully');

  const check = await checkStore(c, range(PK_MIN, PKS), INTERVAL, from, to);
  t.ok(
    (to - from) / INTERVAL >= 25,
    `window of ${(to - from) / INTERVAL} intervals, from before the upgrade to after it`,
  );
  t.same(check.gaps.slice(0, 10), [], `no missing (pk, interval) (${check.gaps.length} missing)`);
  t.equal(check.duplicates, 0, 'no (pk, interval) stored twice');
  t.same(check.totalsMismatch.slice(0, 10), [], 'every running total equals its points: nothing counted twice');
  for (const n of [a2, b2]) t.notMatch(n.output(), /"level":(50|60)/, 'no error logged by this version');
});
