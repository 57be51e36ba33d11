/**
 * The director's ticks on their way through a forwarder to its edges (see
 * tickFrames in cluster/ticks). The forwarder sheds too (an edge that stays
 * full past zmq_block_timeout), so it sends a marker tick of its own after
 * each message it sheds. For that marker to take a number no edge that keeps
 * up sees skipped, the forwarder renumbers the ticks it passes on: each marker
 * shifts the following ones by one. An edge that missed a marker sees a
 * number skipped at the next tick; one that missed a director tick (the
 * director shed it for this node) does too.
 */
import { DownKind, decodeHeader } from '../cluster/wire.js';
import { TICK_OP, positionIn, tickFrames, tickOf } from '../cluster/ticks.js';
import { ALL_TOPIC } from '../cluster/topics.js';

export class TickRelay {
  private run: string | null = null;
  /** The director's number of the last tick passed on. */
  private lastSeq = 0;
  /** Markers sent so far: added to the director's numbers. */
  private shift = 0;

  /** A message for the edges as it goes out: a tick renumbered, anything else unchanged. Call when it is sent. */
  relay(frames: Buffer[]): Buffer[] {
    if (frames.length !== 3 || !frames[0]!.equals(ALL_TOPIC) || decodeHeader(frames[1]!)?.kind !== DownKind.Control) return frames;
    let control: unknown;
    try {
      control = JSON.parse(frames[2]!.toString('utf8'));
    } catch {
      return frames;
    }
    if (!control || typeof control !== 'object' || (control as Record<string, unknown>)['op'] !== TICK_OP) return frames;
    const tick = tickOf(control as Record<string, unknown>);
    if (!tick) return frames;
    this.run = tick.run;
    this.lastSeq = tick.seq;
    return tickFrames(tick.run, tick.seq + this.shift, tick.missed);
  }

  /** The marker to send after `shed`, numbered between the last tick passed on and the next (null before any tick). */
  marker(shed: Buffer[]): Buffer[] | null {
    if (this.run === null) return null;
    this.shift++;
    return tickFrames(this.run, this.lastSeq + this.shift, positionIn(shed));
  }
}
