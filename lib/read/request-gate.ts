/** At most `limit` requests run at once and `queue` more wait their turn (in order); the rest are refused. */
export class RequestGate {
  private active = 0;
  private readonly queued: Array<() => void> = [];

  constructor(
    private readonly limit: number,
    private readonly queue: number,
  ) {}

  get running(): number {
    return this.active;
  }
  get waiting(): number {
    return this.queued.length;
  }

  /** Resolves when the request may run (then call leave()); null when it must be refused. */
  enter(): Promise<void> | null {
    if (this.active < this.limit) {
      this.active++;
      return Promise.resolve();
    }
    if (this.queued.length >= this.queue) return null;
    return new Promise((resolve) => this.queued.push(resolve));
  }

  /** Hands the slot to the next waiting request, if any. */
  leave(): void {
    const next = this.queued.shift();
    if (next) next();
    else this.active--;
  }

  describe(): string {
    return `${this.limit} running, ${this.queue} waiting`;
  }
}
