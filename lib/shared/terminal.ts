// What the CLI may write to a terminal: escapes (colour, clearing the screen) only to a terminal,
// and never when NO_COLOR is set (https://no-color.org: present and not empty).

/** Whether terminal escapes may be written to `stream`. */
export function escapesAllowed(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): boolean {
  return Boolean(stream.isTTY) && !env.NO_COLOR;
}

let quiet = false;

/**
 * A reader that goes away (`| head`, a closed pipe) ends the command quietly with exit code 0,
 * instead of an EPIPE stack trace: what it asked for has been written.
 */
export function endQuietlyOnClosedPipe(): void {
  if (quiet) return;
  quiet = true;
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE') process.exit(0);
      throw err;
    });
  }
}
