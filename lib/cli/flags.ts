// What every subcommand shares about its own flags (not the settings, which lib/ops/config.ts owns).

/** A bad command-line value found after parsing: the CLI prints the message alone and exits 2. */
export class UsageError extends Error {}

/** Parses a numeric flag of a command (not a setting), or throws a UsageError naming it. */
export function numberFlag(
  name: string,
  raw: unknown,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
  integer = false,
): number {
  const n = Number(raw);
  if (
    raw === undefined ||
    raw === '' ||
    !Number.isFinite(n) ||
    n < min ||
    n > max ||
    (integer && !Number.isInteger(n))
  ) {
    const expected = `${integer ? 'an integer' : 'a number'} from ${min} to ${max}`;
    throw new UsageError(`--${name}=${JSON.stringify(raw)} is not valid: expected ${expected}`);
  }
  return n;
}
