// systemd's service notification protocol (sd_notify(3)): newline-separated KEY=VALUE lines in one
// datagram to the AF_UNIX socket named by $NOTIFY_SOCKET. Node's core has no unix datagram socket;
// node-unix-socket (N-API, prebuilt binaries) provides one.
import { DgramSocket } from 'node-unix-socket';
import type { Logger } from '../shared/log.js';
import { PeriodicJob } from '../shared/services.js';

type Env = NodeJS.ProcessEnv;

/** The watchdog period systemd asks for (WatchdogSec=), in ms; undefined when none or meant for another process. */
export function watchdogMs(env: Env = process.env, pid = process.pid): number | undefined {
  const usec = Number(env.WATCHDOG_USEC);
  if (!Number.isInteger(usec) || usec <= 0) return undefined;
  if (env.WATCHDOG_PID !== undefined && Number(env.WATCHDOG_PID) !== pid) return undefined;
  return Math.max(1, Math.floor(usec / 1000));
}

/**
 * Tells systemd (Type=notify) when the service is ready, when it stops, and that it is alive
 * (WATCHDOG=1 every half WatchdogSec= while its health check passes). Does nothing when
 * NOTIFY_SOCKET is unset, i.e. when not run by systemd as a notify service.
 */
export class ServiceNotifier {
  private readonly socket?: string;
  private watchdog?: PeriodicJob<void>;
  private failed = false;

  constructor(
    private readonly log: Logger,
    private readonly env: Env = process.env,
  ) {
    const path = env.NOTIFY_SOCKET;
    if (!path) return;
    // node-unix-socket takes a path; systemd's own socket is one (/run/systemd/notify)
    if (!path.startsWith('/')) {
      log.warn({ NOTIFY_SOCKET: path }, 'NOTIFY_SOCKET is not a socket path: systemd will not hear that this is ready');
      return;
    }
    this.socket = path;
  }

  /** Whether systemd listens (NOTIFY_SOCKET names a socket path). */
  get enabled(): boolean {
    return this.socket !== undefined;
  }

  /** READY=1: start-up is over (`systemctl start` returns now); MAINPID so systemd knows who sent it. */
  ready(status: string): void {
    this.send({ READY: '1', STATUS: status, MAINPID: String(process.pid) });
  }

  /** STOPPING=1: a stop has begun (systemd shows the unit "deactivating" while it hands over and flushes). */
  stopping(status = 'stopping: handing over and flushing'): void {
    this.stopWatchdog();
    this.send({ STOPPING: '1', STATUS: status });
  }

  /** A one-line status for `systemctl status`. */
  status(text: string): void {
    this.send({ STATUS: text });
  }

  /**
   * WATCHDOG=1 every half of WatchdogSec= while `healthy()` holds: a process whose event loop is
   * stuck, or whose check fails for WatchdogSec, is killed and restarted by systemd.
   */
  startWatchdog(healthy: () => boolean = () => true): void {
    const period = watchdogMs(this.env);
    if (!this.socket || period === undefined || this.watchdog) return;
    const tick = (): void => {
      if (healthy()) this.send({ WATCHDOG: '1' });
    };
    const everyMs = Math.max(1, Math.floor(period / 2));
    this.watchdog = new PeriodicJob(tick, {
      log: this.log,
      failure: 'the watchdog check failed',
      everyMs,
      unref: true,
    });
    this.watchdog.start();
    this.watchdog.runNow();
  }

  stopWatchdog(): void {
    void this.watchdog?.stop();
    this.watchdog = undefined;
  }

  stop(): void {
    this.stopWatchdog();
  }

  private send(fields: Record<string, string>): void {
    if (!this.socket) return;
    const message = Buffer.from(
      Object.entries(fields)
        .map(([k, v]) => `${k}=${v.replace(/\n/g, ' ')}`)
        .join('\n'),
    );
    // one socket per message, closed once sent: an open one would keep the process alive
    const socket = new DgramSocket();
    socket.on('error', () => undefined);
    try {
      socket.sendTo(message, 0, message.length, this.socket, (err) => {
        socket.close();
        if (err) this.failedOnce(err);
      });
    } catch (err) {
      socket.close();
      this.failedOnce(err as Error);
    }
  }

  private failedOnce(err: Error): void {
    if (this.failed) return;
    this.failed = true;
    this.log.warn({ err: err.message, NOTIFY_SOCKET: this.socket }, 'cannot notify systemd');
  }
}
