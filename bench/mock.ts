import { spawn, type ChildProcess } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { autocannon, randomPkRequests } from './autocannon.js';

export interface MockBenchOptions {
  seconds: number;
  connections: number;
}
export interface MockBenchResult {
  requestsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  mockCpuPercent: number;
}

const PK_MIN = 1_000_000;
const COUNT = 1_000_000;
const WARM_UP_S = 1;
const PATHS = 1000;

// The mock runs alone in its own process (one JS thread), so its figures are those of one core.
const CHILD = `
const { startMock } = await import(process.argv[1]);
const mock = await startMock({ port: 0, seed: 1, pkMin: ${PK_MIN}, count: ${COUNT}, suspiciousDelayScale: 0 });
process.on('message', (m) => { if (m === 'cpu') process.send({ cpu: process.cpuUsage(), at: performance.now() }); });
process.send({ port: mock.port });
`;

interface CpuSample {
  cpu: NodeJS.CpuUsage;
  at: number;
}

function startChild(): Promise<{ child: ChildProcess; port: number }> {
  const mockUrl = new URL('../lib/mock/mockstagram.js', import.meta.url).href;
  const child = spawn(process.execPath, ['--input-type=module', '-e', CHILD, mockUrl], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`mock child exited with code ${code} before listening`)));
    child.once('message', (m: { port: number }) => resolve({ child, port: m.port }));
  });
}

function cpuSample(child: ChildProcess): Promise<CpuSample> {
  return new Promise((resolve) => {
    child.once('message', (m: CpuSample) => resolve(m));
    child.send('cpu');
  });
}

/** Loads a mock in a child process with autocannon from this one; reports throughput, latency and the mock's CPU. */
export async function benchMock(opts: MockBenchOptions): Promise<MockBenchResult> {
  const { child, port } = await startChild();
  try {
    const url = `http://127.0.0.1:${port}`;
    const requests = randomPkRequests(PATHS, PK_MIN, COUNT, (pk) => `/api/v1/influencers/${pk}`);
    await autocannon({ url, connections: opts.connections, duration: WARM_UP_S, requests });
    const before = await cpuSample(child);
    const result = await autocannon({ url, connections: opts.connections, duration: opts.seconds, requests });
    const after = await cpuSample(child);
    if (result.errors > 0 || result.non2xx > 0) {
      throw new Error(`mock bench saw ${result.errors} connection errors and ${result.non2xx} non-2xx answers`);
    }
    const cpuUs = after.cpu.user + after.cpu.system - before.cpu.user - before.cpu.system;
    return {
      requestsPerSec: Math.round(result.requests.total / result.duration),
      p50Ms: result.latency.p50,
      p99Ms: result.latency.p99,
      mockCpuPercent: Math.round((cpuUs / 1000 / (after.at - before.at)) * 1000) / 10,
    };
  } finally {
    child.kill();
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { seconds: { type: 'string' }, connections: { type: 'string' } } });
  const seconds = Number(values.seconds ?? 10);
  const connections = Number(values.connections ?? 50);
  if (!(seconds > 0) || !Number.isInteger(connections) || connections < 1) {
    throw new Error('usage: node dist/bench/mock.js [--seconds N>0] [--connections N>=1]');
  }
  const result = await benchMock({ seconds, connections });
  // On a shared machine the client may saturate first: the mock's CPU per request gives its one-core ceiling.
  const cpuUsPerRequest = (result.mockCpuPercent * 10_000) / result.requestsPerSec;
  console.log(
    JSON.stringify({
      bench: 'mock',
      seconds,
      connections,
      ...result,
      mockCpuUsPerRequest: Math.round(cpuUsPerRequest * 10) / 10,
      mockOneCoreCeilingPerSec: Math.round(1e6 / cpuUsPerRequest),
    }),
  );
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
