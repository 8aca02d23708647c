/**
 * Why a server could not be found, installed or started: each of `lines` is printed as one
 * `influencer-node: <line>` (exit code 1), then `tail`, the last output of the command that failed.
 */
export class SetupError extends Error {
  constructor(
    readonly lines: string[],
    readonly tail: string[] = [],
  ) {
    super(lines.join('; '));
  }
}
