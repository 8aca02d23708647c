import type { Readable } from 'node:stream';

/** The last output of a child process, kept for the message that says why it failed. */
export class OutputTail {
  private text = '';

  constructor(private readonly maxChars = 4096) {}

  /** Keeps what `stream` writes (stdout or stderr of a child spawned with pipes). */
  follow(stream: Readable | null | undefined): this {
    stream?.on('data', (chunk: Buffer | string) => this.add(String(chunk)));
    return this;
  }

  add(chunk: string): void {
    this.text = (this.text + chunk).slice(-this.maxChars);
  }

  /** The last `n` non-empty lines. */
  lines(n = 10): string[] {
    return this.text
      .split('\n')
      .map((l) => l.trimEnd())
      .filter((l) => l.trim() !== '')
      .slice(-n);
  }

  toString(): string {
    return this.text;
  }
}
