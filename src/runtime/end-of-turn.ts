/**
 * Runs `flush` once at the end of the current event-loop turn (setImmediate),
 * however many times it is asked for during the turn: what the turn produced
 * leaves together (a batch per hop) without waiting for a timer.
 */
export class EndOfTurn {
  private armed = false;

  constructor(private readonly flush: () => void) {}

  /** Flush at the end of this turn (once, if asked again before then). */
  request(): void {
    if (this.armed) return;
    this.armed = true;
    setImmediate(this.run);
  }

  private readonly run = (): void => {
    this.armed = false;
    this.flush();
  };
}
