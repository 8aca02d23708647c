// The redis-server and FerretDB that demo and the tests start (lib/ops/embedded/launch.ts) are locked
// down: they listen on 127.0.0.1 only, refuse a client without the password, keep that password in
// their data directory (0600, the directory 0700) and never on a command line, and keep it across a
// restart on the same data.
import t from 'tap';
import { readFileSync, statSync } from 'node:fs';
import { createConnection } from 'node:net';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { MongoClient } from 'mongodb';
import { plan, startFerret, startRedis } from '../../../kit/servers.js';

const mode = (path: string): number => statSync(path).mode & 0o777;

/** An address of this machine other than loopback, if it has one. */
const outside = Object.values(networkInterfaces())
  .flat()
  .find((a) => a && a.family === 'IPv4' && !a.internal)?.address;

/** Whether something accepts a TCP connection at host:port. */
function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host, port, timeout: 2000 });
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => (socket.destroy(), resolve(false)));
  });
}

/** Redis's answer to one inline command sent over a bare connection. */
function say(port: number, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host: '127.0.0.1', port }, () => socket.write(`${command}\r\n`));
    socket.once('data', (data) => (socket.destroy(), resolve(data.toString())));
    socket.once('error', reject);
  });
}

t.test('redis-server: loopback only, a password from its data directory, kept across a restart', async (t) => {
  const at = await plan('redis');
  const server = await startRedis(at);
  t.teardown(() => server.stop());
  const secret = new URL(server.url).password;
  t.match(secret, /^[0-9a-f]{48}$/, 'the URL carries a generated password');
  t.equal(readFileSync(join(at.dataDir, 'password'), 'utf8').trim(), secret, 'kept in its data directory');
  t.equal(mode(at.dataDir), 0o700, 'data directory 0700');
  t.equal(mode(join(at.dataDir, 'password')), 0o600, 'password file 0600');
  t.equal(mode(join(at.dataDir, 'redis.conf')), 0o600, 'its config (which holds the password) 0600');
  const cmdline = readFileSync(`/proc/${server.process!.pid}/cmdline`, 'utf8');
  t.notOk(cmdline.includes(secret), 'the password is not on its command line');

  t.match(await say(server.port, 'PING'), /^-NOAUTH/, 'a client without the password is refused');
  const client = new Redis(server.url, { lazyConnect: true });
  t.teardown(() => client.disconnect());
  client.on('error', () => undefined);
  await client.connect();
  t.equal(await client.ping(), 'PONG', 'the URL connects');
  if (outside) t.notOk(await accepts(outside, server.port), `not reachable at ${outside}`);

  await server.restart();
  const again = new Redis(server.url, { lazyConnect: true });
  t.teardown(() => again.disconnect());
  again.on('error', () => undefined);
  await again.connect();
  t.equal(await again.ping(), 'PONG', 'the same URL after a restart on the same data');
});

t.test('FerretDB: loopback only, authentication with the password from its data directory', async (t) => {
  const at = await plan('ferret');
  const server = await startFerret(at);
  t.teardown(() => server.stop());
  const url = new URL(server.url);
  t.equal(url.username, 'influencer');
  t.equal(readFileSync(join(at.dataDir, 'password'), 'utf8').trim(), url.password, 'kept in its data directory');
  t.equal(mode(at.dataDir), 0o700, 'data directory 0700');
  t.equal(mode(join(at.dataDir, 'password')), 0o600, 'password file 0600');
  const cmdline = readFileSync(`/proc/${server.process!.pid}/cmdline`, 'utf8');
  t.notOk(cmdline.includes(url.password), 'the password is not on its command line');

  const anonymous = new MongoClient(`mongodb://127.0.0.1:${server.port}`, { serverSelectionTimeoutMS: 5000 });
  t.teardown(() => anonymous.close());
  await t.rejects(
    anonymous
      .db('t')
      .collection('c')
      .insertOne({ _id: 1 } as never),
    /requires authentication/,
    'a client without the password is refused',
  );
  const wrong = new MongoClient(server.url.replace(url.password, 'not-it'), { serverSelectionTimeoutMS: 5000 });
  t.teardown(() => wrong.close());
  await t.rejects(wrong.connect(), /Authentication failed/, 'a wrong password is refused');
  const client = new MongoClient(server.url, { serverSelectionTimeoutMS: 5000 });
  t.teardown(() => client.close());
  await client
    .db('t')
    .collection('c')
    .insertOne({ _id: 1 } as never);
  t.equal(await client.db('t').collection('c').countDocuments(), 1, 'the URL reads and writes');
  if (outside) t.notOk(await accepts(outside, server.port), `not reachable at ${outside}`);

  await client.close();
  await server.restart();
  const again = new MongoClient(server.url, { serverSelectionTimeoutMS: 10_000 });
  t.teardown(() => again.close());
  t.equal(await again.db('t').collection('c').countDocuments(), 1, 'the same user and data after a restart');
});
