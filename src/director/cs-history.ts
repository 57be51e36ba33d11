/**
 * channelstream's channel history as its server API shows it (`history` of
 * chan_info in /connect, /subscribe and /info): the stored message objects
 * with their delivery keys (`pm_users`, `exclude_users`, `no_history`),
 * private messages sent in the channel included. It is the server-side
 * caller's data: a web app filters it before showing it to a browser. Kept
 * apart from the native history ring, which holds only what every
 * subscriber may see and what native recovery replays.
 *
 * Bounded per channel by the channel config's `history_size` (count),
 * `history_ttl` (seconds, 0 = none, as channelstream) and MAX_BYTES. Pure.
 */
type Obj = Record<string, unknown>;

/** Bytes of stored messages per channel; the oldest go first past it. */
export const MAX_BYTES = 4 * 1024 * 1024;

interface Entry {
  message: Obj;
  time: number;
  bytes: number;
}

interface Ring {
  entries: Entry[];
  bytes: number;
}

export class CsHistory {
  private readonly rings = new Map<string, Ring>();

  has(channel: string): boolean {
    return this.rings.has(channel);
  }

  get size(): number {
    return this.rings.size;
  }

  /** Store a channel message (channelstream keeps `type: "message"` items without `no_history`). */
  add(channel: string, message: Obj, size: number, ttlMs: number, now: number): void {
    if (size <= 0) return;
    let ring = this.rings.get(channel);
    if (!ring) this.rings.set(channel, (ring = { entries: [], bytes: 0 }));
    const bytes = JSON.stringify(message).length;
    ring.entries.push({ message, time: now, bytes });
    ring.bytes += bytes;
    this.trim(channel, ring, size, ttlMs, now);
  }

  /** The stored messages, oldest first. */
  list(channel: string, size: number, ttlMs: number, now: number): Obj[] {
    const ring = this.rings.get(channel);
    if (!ring) return [];
    this.trim(channel, ring, size, ttlMs, now);
    return ring.entries.map((e) => e.message);
  }

  /** Apply `change` to the stored message with this uuid; returns whether one was found. */
  edit(channel: string, uuid: string, change: (m: Obj) => void): boolean {
    const e = this.rings.get(channel)?.entries.find((x) => x.message['uuid'] === uuid);
    if (!e) return false;
    change(e.message);
    return true;
  }

  delete(channel: string, uuid: string): void {
    const ring = this.rings.get(channel);
    const i = ring?.entries.findIndex((x) => x.message['uuid'] === uuid) ?? -1;
    if (!ring || i < 0) return;
    ring.bytes -= ring.entries[i]!.bytes;
    ring.entries.splice(i, 1);
    if (ring.entries.length === 0) this.rings.delete(channel);
  }

  /** Drop what is past its time in every channel (called by the director's collection). */
  expire(now: number, limits: (channel: string) => { size: number; ttlMs: number }): void {
    for (const [channel, ring] of [...this.rings]) {
      const { size, ttlMs } = limits(channel);
      this.trim(channel, ring, size, ttlMs, now);
    }
  }

  forget(channel: string): void {
    this.rings.delete(channel);
  }

  private trim(channel: string, ring: Ring, size: number, ttlMs: number, now: number): void {
    let drop = 0;
    let bytes = ring.bytes;
    const n = ring.entries.length;
    while (drop < n && (n - drop > size || bytes > MAX_BYTES || (ttlMs > 0 && now - ring.entries[drop]!.time > ttlMs))) {
      bytes -= ring.entries[drop]!.bytes;
      drop++;
    }
    if (drop > 0) {
      ring.entries.splice(0, drop);
      ring.bytes = bytes;
    }
    if (ring.entries.length === 0) this.rings.delete(channel);
  }
}
