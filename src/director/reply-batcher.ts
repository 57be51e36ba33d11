/**
 * Replies to batched commands go back batched: per caller (ROUTER route),
 * the replies ready in one event-loop turn leave as one ZeroMQ message (a
 * reply batch, src/cluster/batch.ts); a reply alone in its turn leaves in the
 * plain form. Only commands that came in a batch are answered here: a caller
 * that sent a command alone gets its reply alone, as it always did.
 *
 * Bounds: a batch leaves as soon as it reaches MAX_BATCH_BYTES or
 * MAX_BATCH_ENTRIES; what waits for the end of the turn is at most that per
 * caller, and the replies' send queue keeps its own limit.
 */
import { MAX_BATCH_BYTES, MAX_BATCH_ENTRIES, encodeReplyBatch, type ReplyEntry } from '../cluster/batch.js';
import { EndOfTurn } from '../runtime/end-of-turn.js';

const OK = Buffer.from('ok');
const ERROR = Buffer.from('error');

/** The key of a caller's route (its ROUTER identities). */
export function routeKey(route: Buffer[]): string {
  return route.length === 1 ? route[0]!.toString('latin1') : route.map((r) => r.toString('latin1')).join('\0');
}

interface Pending {
  route: Buffer[];
  entries: ReplyEntry[];
  bytes: number;
}

export class ReplyBatcher {
  private pending = new Map<string, Pending>();
  private readonly endOfTurn = new EndOfTurn(() => this.flush());

  /** `send` queues frames on the ROUTER; false when its queue refused them. */
  constructor(private readonly send: (frames: Buffer[]) => void) {}

  /** `key`: routeKey(route), given by a caller that answers many commands of one route. */
  add(route: Buffer[], id: number, ok: boolean, body: Buffer, key = routeKey(route)): void {
    let p = this.pending.get(key);
    if (!p) {
      p = { route, entries: [], bytes: 0 };
      this.pending.set(key, p);
      this.endOfTurn.request();
    }
    p.entries.push({ id, ok, body });
    p.bytes += 9 + body.length;
    if (p.bytes >= MAX_BATCH_BYTES || p.entries.length >= MAX_BATCH_ENTRIES) {
      this.pending.delete(key);
      this.emit(p);
    }
  }

  flush(): void {
    if (this.pending.size === 0) return;
    const all = this.pending;
    this.pending = new Map();
    for (const p of all.values()) this.emit(p);
  }

  private emit(p: Pending): void {
    if (p.entries.length === 1) {
      const e = p.entries[0]!;
      const id = Buffer.allocUnsafe(4);
      id.writeUInt32BE(e.id);
      this.send([...p.route, id, e.ok ? OK : ERROR, e.body]);
      return;
    }
    this.send([...p.route, ...encodeReplyBatch(p.entries)]);
  }
}
