/**
 * The callers (ROUTER routes) a forwarder has passed commands on for since its
 * link to the director last came up, so that when the link drops it can send
 * each of them the "link lost" reply (src/cluster/link-lost.ts): their
 * requests in flight will never be answered. Bounded: past `max` callers the
 * first seen is forgotten (its requests then time out as before).
 */
export class CommandCallers {
  private callers = new Map<string, Buffer[]>();
  constructor(private readonly max = 10_000) {}

  /** A command, [...route, id, method, body], went to the director. */
  passed(command: Buffer[]): void {
    const n = command.length - 3;
    // Nearly always one frame: the identity this forwarder's ROUTER gave the caller.
    const key = n === 1 ? command[0]!.toString('latin1') : command.slice(0, n).map((f) => f.toString('latin1')).join('\0');
    if (this.callers.has(key)) return;
    if (this.callers.size >= this.max) {
      this.callers.delete(this.callers.keys().next().value!);
    }
    this.callers.set(key, command.slice(0, n).map((f) => Buffer.from(f)));
  }

  /** The callers to tell, forgotten from here on (the link starts afresh). */
  take(): Buffer[][] {
    const routes = [...this.callers.values()];
    this.callers.clear();
    return routes;
  }

  get size(): number {
    return this.callers.size;
  }
}
