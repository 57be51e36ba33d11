/**
 * Live pushes held back per channel while a connection first receives older
 * messages (native recovery), so those go out first
 * and nothing is lost or duplicated. Bounded: a channel holding too many makes
 * `offer` report an overflow and the caller cuts the client off as slow.
 */
import type { SharedPush } from './frames.js';

/** Live messages held for one channel; past this the client is cut off as slow. */
export const MAX_HELD = 10_000;

export class HeldPushes {
  private byChannel: Map<string, SharedPush[]> | null = null;

  hold(channel: string): void {
    (this.byChannel ??= new Map()).set(channel, []);
  }

  /** Whether the channel's pushes are held now. */
  holds(channel: string): boolean {
    return this.byChannel !== null && this.byChannel.has(channel);
  }

  /** 'held' when the push's channel is held, 'overflow' when it is full, 'pass' otherwise. */
  offer(push: SharedPush): 'held' | 'overflow' | 'pass' {
    if (this.byChannel === null || push.channel === null) return 'pass';
    const held = this.byChannel.get(push.channel);
    if (!held) return 'pass';
    if (held.length >= MAX_HELD) return 'overflow';
    held.push(push);
    return 'held';
  }

  /**
   * Stop holding the channel; returns what was held that belongs after
   * `after` (offset 0 marks channel events, which have no offset and always belong).
   */
  release(channel: string, after: number): SharedPush[] {
    const held = this.byChannel?.get(channel) ?? [];
    this.byChannel?.delete(channel);
    if (this.byChannel?.size === 0) this.byChannel = null;
    return held.filter((p) => p.offset === 0 || p.offset > after);
  }
}
