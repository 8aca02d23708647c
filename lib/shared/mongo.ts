import { MongoClient, type Db } from 'mongodb';
import { maskUrl } from './mask-url.js';
import { sleep } from './util.js';
import type { Logger } from './log.js';

export function createMongo(url: string): MongoClient {
  return new MongoClient(url, {
    serverSelectionTimeoutMS: 3000,
    connectTimeoutMS: 3000,
    maxPoolSize: 8,
    retryWrites: false,
  });
}

/** Tracks whether the driver reaches a server (it knows one that answers), for metrics and readiness. */
export function watchReachable(client: MongoClient): () => boolean {
  let up = false;
  client.on('topologyDescriptionChanged', (e) => {
    up = e.newDescription.hasKnownServers;
  });
  client.on('topologyClosed', () => {
    up = false;
  });
  return () => up;
}

/** Connects, retrying every second while `signal` is not aborted; logs once that it waits. */
export async function connectMongo(
  client: MongoClient,
  url: string,
  dbName: string,
  log: Logger,
  signal?: AbortSignal,
): Promise<Db> {
  let warned = false;
  for (;;) {
    try {
      await client.connect();
      const db = client.db(dbName);
      await db.command({ ping: 1 });
      if (warned) log.info({ url: maskUrl(url) }, 'MongoDB reachable');
      return db;
    } catch (err) {
      if (signal?.aborted) throw err;
      if (!warned)
        log.warn({ url: maskUrl(url), err: (err as Error).message }, 'MongoDB unreachable; retrying every second');
      warned = true;
      await sleep(1000, signal);
    }
  }
}
