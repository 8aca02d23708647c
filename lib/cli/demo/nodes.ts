// The demo's node processes: each an `influencer-node start` child with the demo's settings, its
// warnings forwarded, and stopped in order (SIGTERM, then SIGKILL past a deadline).
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { SETTINGS, type Config, type SettingName } from '../../ops/config.js';
import type { Logger } from '../../shared/log.js';
import { PACKAGE_ROOT } from '../../shared/version.js';
import { NODE_FLAGS } from '../node-flags.js';

export interface DemoNode {
  id: string;
  child: ChildProcess;
  exited: Promise<number | null>;
}

/** One `influencer-node start` child with this demo's settings; its warnings are forwarded, prefixed with its id. */
export function spawnNode(id: string, index: number, config: Config, mockUrl: string, log: Logger): DemoNode {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const [key, s] of Object.entries(SETTINGS) as [SettingName, { env: string }][]) env[s.env] = String(config[key]);
  Object.assign(env, { NODE_ID: id, MOCKSTAGRAM_URL: mockUrl, LOG_LEVEL: log.level });
  // each node its own metrics port, if asked for: METRICS_PORT, +1, +2, ...
  if (Number(env.METRICS_PORT) > 0) env.METRICS_PORT = String(Number(env.METRICS_PORT) + index);
  // its own process group: a terminal's Ctrl-C reaches the demo only, which then stops the nodes in order
  const bin = join(PACKAGE_ROOT, 'bin', 'influencer-node.js');
  const child = spawn(process.execPath, [...NODE_FLAGS, bin, 'start'], {
    env,
    stdio: ['ignore', 'ignore', 'pipe'],
    detached: true,
  });
  let partial = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => {
    const lines = (partial + chunk).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) if (line.trim()) process.stderr.write(`[${id}] ${line}\n`);
  });
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code, sig) => resolve(code ?? (sig ? 128 : null)));
    child.once('error', (err) => {
      log.error({ node: id, err: err.message }, 'could not start node');
      resolve(1);
    });
  });
  return { id, child, exited };
}

function running(n: DemoNode): boolean {
  return n.child.exitCode === null && n.child.signalCode === null;
}

/** SIGTERM to every node still running (they hand over and flush), SIGKILL to any past `deadlineMs`; their exit codes. */
export function stopNodes(nodes: readonly DemoNode[], deadlineMs: number): Promise<Array<number | null>> {
  return Promise.all(
    nodes.map(async (n) => {
      if (running(n)) n.child.kill('SIGTERM');
      const timer = setTimeout(() => n.child.kill('SIGKILL'), deadlineMs);
      const code = await n.exited;
      clearTimeout(timer);
      return code;
    }),
  );
}

/** SIGKILL to every node still running: a second Ctrl-C takes them along rather than orphan them. */
export function killNodes(nodes: readonly DemoNode[]): void {
  for (const n of nodes) if (running(n)) n.child.kill('SIGKILL');
}
