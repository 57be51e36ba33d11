/**
 * Which channel messages a WAMP session receives as EVENTs, and when.
 *
 * A channel's messages are held while its SUBSCRIBE is in progress (an EVENT
 * must never precede its SUBSCRIBED) and while the session's own PUBLISHes
 * with `exclude_me` are in flight (their offsets are only known from the
 * director's reply, which may arrive after the message itself). Once nothing
 * holds the channel, the held messages go out in order, without the
 * session's own publications. Bounded: a channel holding more than
 * HeldPushes' limit reports an overflow (the session is cut off as slow).
 */
import { HeldPushes } from '../edge/held-pushes.js';
import type { SharedPush } from '../edge/frames.js';

interface ChannelGate {
  /** Reasons the channel is held (a SUBSCRIBE in progress, exclude_me publishes in flight). */
  holds: number;
  /** Offsets of the session's own publications it must not receive, ascending. */
  own: number[];
}

export class EventGate {
  private readonly held = new HeldPushes();
  private readonly channels = new Map<string, ChannelGate>();

  hold(channel: string): void {
    let g = this.channels.get(channel);
    if (!g) this.channels.set(channel, (g = { holds: 0, own: [] }));
    if (g.holds++ === 0) this.held.hold(channel);
  }

  /** One reason fewer to hold; when none is left, returns the held messages to send (own ones removed). */
  unhold(channel: string): SharedPush[] {
    const g = this.channels.get(channel);
    if (!g || g.holds === 0) return [];
    if (--g.holds > 0) return [];
    const out = this.held.release(channel, 0).filter((p) => this.pass(p));
    this.dropIfIdle(channel, g);
    return out;
  }

  /** The session published `offset` on a held channel with exclude_me. */
  own(channel: string, offset: number): void {
    const g = this.channels.get(channel);
    if (!g) return;
    // Replies to several publishes may come in any order; the list stays ascending like the stream.
    let i = g.own.length;
    while (i > 0 && g.own[i - 1]! > offset) i--;
    g.own.splice(i, 0, offset);
  }

  /** What to do with a live message: send it, hold it, skip it (own publication), or overflow. */
  offer(push: SharedPush): 'send' | 'held' | 'skip' | 'overflow' {
    const verdict = this.held.offer(push);
    if (verdict === 'held' || verdict === 'overflow') return verdict;
    return this.pass(push) ? 'send' : 'skip';
  }

  /** The session left the channel: its own publications there will not come any more. */
  forget(channel: string): void {
    const g = this.channels.get(channel);
    if (!g) return;
    g.own.length = 0;
    this.dropIfIdle(channel, g);
  }

  /** Channels with state here (for tests: nothing is left behind). */
  get size(): number {
    return this.channels.size;
  }

  private pass(push: SharedPush): boolean {
    const channel = push.channel;
    if (channel === null) return true;
    const g = this.channels.get(channel);
    if (!g || g.own.length === 0) return true;
    while (g.own.length > 0 && g.own[0]! < push.offset) g.own.shift();
    const mine = g.own[0] === push.offset;
    if (mine) g.own.shift();
    this.dropIfIdle(channel, g);
    return !mine;
  }

  private dropIfIdle(channel: string, g: ChannelGate): void {
    if (g.holds === 0 && g.own.length === 0) this.channels.delete(channel);
  }
}
