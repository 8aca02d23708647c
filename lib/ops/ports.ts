// Local TCP ports: a free one to start a server on, whether one is taken, and waiting for a server to listen.
import { connect, createServer } from 'node:net';
import { sleep } from '../shared/util.js';

/** A port nothing listens on now (the kernel's pick); another process may take it before the caller does. */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, host, () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** Whether `port` on `host` can be listened on now: false when another program has it. */
export function portFree(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen(port, host, () => srv.close(() => resolve(true)));
  });
}

/** Whether something accepts a TCP connection on `port` of 127.0.0.1. */
export function answers(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect(port, host);
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

/**
 * Polls until something listens on `port`. `gone()` names why waiting is pointless (the server's
 * process exited), which is thrown at once; after `timeoutMs` it throws naming the port.
 */
export async function waitForPort(
  port: number,
  timeoutMs = 20_000,
  gone = (): string | undefined => undefined,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const why = gone();
    if (why) throw new Error(why);
    if (await answers(port)) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on port ${port} after ${timeoutMs} ms`);
    await sleep(50);
  }
}
