// Whether a member card that holds this node's id was left by an earlier run of this same node
// (a crash, a SIGKILL, systemd restarting it): then the new process may take it over at once
// instead of waiting for its TTL. Another live process with the id is never displaced.
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import type { MemberCard } from './card.js';

/** Where this process runs: host, boot of that host, and the systemd unit, when run by one. */
export interface ProcessPlace {
  host: string;
  /** /proc/sys/kernel/random/boot_id: another one means the host restarted since */
  boot?: string;
  /** the systemd service (`influencer-node@1.service`), set only when systemd started this process */
  unit?: string;
  pid: number;
}

/** This process's place, read once. */
export function thisProcess(env: NodeJS.ProcessEnv = process.env): ProcessPlace {
  return { host: hostname(), boot: readBoot(), unit: systemdUnit(env), pid: process.pid };
}

function readBoot(): string | undefined {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

/** The service of this process's cgroup, when systemd started it (it sets INVOCATION_ID). */
export function systemdUnit(env: NodeJS.ProcessEnv, cgroup = readCgroup()): string | undefined {
  if (!env.INVOCATION_ID || cgroup === undefined) return undefined;
  for (const line of cgroup.split('\n')) {
    const path = line.split(':').slice(2).join(':');
    const unit = path
      .split('/')
      .reverse()
      .find((part) => part.endsWith('.service'));
    if (unit) return unit;
  }
  return undefined;
}

function readCgroup(): string | undefined {
  try {
    return readFileSync('/proc/self/cgroup', 'utf8');
  } catch {
    return undefined;
  }
}

/** Whether a process with this pid runs on this host (EPERM: it does, as another user). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Why `card` is a stale card of this very node (same host and unit, its process gone), or
 * undefined when it may belong to a live process and must be left to its TTL.
 */
export function staleOwnCard(
  card: MemberCard,
  self: ProcessPlace,
  alive: (pid: number) => boolean = processAlive,
): string | undefined {
  if (card.host !== self.host || (card.unit ?? undefined) !== self.unit || card.pid === self.pid) return undefined;
  if (card.boot !== undefined && self.boot !== undefined && card.boot !== self.boot) {
    return `its host ${card.host} has restarted since pid ${card.pid} wrote it`;
  }
  if (alive(card.pid)) return undefined;
  return `pid ${card.pid} on ${card.host}${self.unit ? ` (${self.unit})` : ''} is gone`;
}
