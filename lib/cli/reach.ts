import { maskUrl } from '../shared/mask-url.js';

/**
 * Connects a one-shot command's client. On failure it prints the one line a user sees
 * ("influencer-node: Redis unreachable at <url>: <why>", the URL's password masked) and resolves
 * false, so the command exits 1. `cause` gives the first connection error when `connect` only says
 * the connection closed (ioredis).
 */
export async function reached(
  server: 'MongoDB' | 'Redis',
  url: string,
  connect: () => Promise<unknown>,
  cause?: () => Error | undefined,
): Promise<boolean> {
  try {
    await connect();
    return true;
  } catch (err) {
    const why = (cause?.() ?? (err as Error)).message;
    process.stderr.write(`influencer-node: ${server} unreachable at ${maskUrl(url)}: ${why}\n`);
    return false;
  }
}
