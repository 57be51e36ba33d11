/**
 * Young-generation collections paced by the bytes a forwarder receives.
 *
 * zeromq.js hands every received frame over 128 bytes to JavaScript as an
 * external Buffer over libzmq's own memory, freed only when V8 collects that
 * Buffer. A forwarder allocates next to nothing on the JavaScript heap per
 * batch it passes on, so its young generation fills, and is scavenged, a few
 * times a minute, while tens of MB of batches a second pass through: their
 * memory waits for V8's external-memory trigger, a full mark-compact every
 * second or two, and libzmq's next batches land in pages the allocator gave
 * back meanwhile (page faults on the ZeroMQ I/O thread). A scavenge after
 * every few MB received frees them young, in well under a millisecond: the
 * forwarder's CPU per batch fell by about a fifth (bench/forwarder-hop.ts,
 * docs/benchmarks.md).
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** Frames longer than this reach JavaScript as external Buffers (zeromq.js copies shorter ones). */
const ZERO_COPY_THRESHOLD = 128;

type GcFunction = (options: { type: 'minor' | 'major' }) => void;

/**
 * V8's gc(), which Node does not expose by default: the flag is set, and
 * the function taken from a context made afterwards (contexts made before,
 * the main one included, never get it). Null where V8 refuses.
 */
export function exposedGc(): GcFunction | null {
  const own = (globalThis as { gc?: unknown }).gc;
  if (typeof own === 'function') return own as GcFunction;
  try {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('typeof gc === "function" ? gc : null') as unknown;
    return typeof gc === 'function' ? (gc as GcFunction) : null;
  } catch {
    return null;
  }
}

export class GcPacer {
  private since = 0;
  /** Young-generation collections asked for so far. */
  collections = 0;

  /** `collect` runs once per `everyBytes` of external frames received (everyBytes 0: never). */
  constructor(
    private readonly everyBytes: number,
    private readonly collect: () => void,
  ) {}

  /** A message was received: its frames that are external Buffers count towards the next collection. */
  received(frames: readonly Buffer[]): void {
    if (this.everyBytes <= 0) return;
    for (const f of frames) if (f.length > ZERO_COPY_THRESHOLD) this.since += f.length;
    if (this.since < this.everyBytes) return;
    this.since = 0;
    this.collections++;
    this.collect();
  }
}
