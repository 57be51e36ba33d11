/**
 * The memory engine: the director's in-process channel registry (channels.ts,
 * history.ts: count, age and byte bounds per channel, one byte budget over
 * every channel) behind the engine interface, answering synchronously. State
 * lives as long as the process.
 */
import type { ChannelRegistry } from '../channels.js';
import type { HistoryLimits } from '../history.js';
import type { MessagePushBytes } from '../push-encoding.js';
import { assemblePush, type Appended, type AppendRequest, type HistoryPage, type HistoryQuery, type RecordKind, type StateEngine, type StreamPosition } from './engine.js';

function sameLimits(a: HistoryLimits, b: HistoryLimits): boolean {
  return a === b || (a.maxCount === b.maxCount && a.maxAgeMs === b.maxAgeMs && a.maxBytes === b.maxBytes);
}

export class MemoryEngine implements StateEngine {
  readonly kind = 'memory' as const;
  private readonly records = new Map<RecordKind, Map<string, unknown>>();

  constructor(readonly channels: ChannelRegistry) {}

  async start(): Promise<void> {}
  async stop(): Promise<void> {}

  append(req: AppendRequest): Appended {
    const state = this.channels.getOrCreate(req.channel, req.now);
    if (!sameLimits(state.history.limits, req.limits)) state.history.setLimits(req.limits, req.now);
    const offset = state.next(req.now);
    const text = assemblePush(req.head, offset, state.epoch, req.tail);
    // Kept: encoded once, into history memory, and those bytes go down as they are (no copy per entry).
    if (req.store) return { offset, epoch: state.epoch, push: state.history.store(offset, req.now, text) };
    state.history.trim(req.now);
    return { offset, epoch: state.epoch, push: Buffer.from(text, 'utf8') };
  }

  appendBytes(channel: string, now: number, store: boolean, limits: HistoryLimits, push: MessagePushBytes): Buffer {
    const state = this.channels.getOrCreate(channel, now);
    if (!sameLimits(state.history.limits, limits)) state.history.setLimits(limits, now);
    const offset = state.next(now);
    push.place(offset, state.epoch);
    if (store) return state.history.storeBytes(offset, now, push);
    state.history.trim(now);
    return push.alone();
  }

  position(channel: string, now: number): StreamPosition {
    const state = this.channels.getOrCreate(channel, now);
    return { offset: state.offset, epoch: state.epoch };
  }

  history(channel: string, q: HistoryQuery): HistoryPage {
    const state = this.channels.get(channel);
    if (!state) return { offset: 0, epoch: '', oldest: 1, more: false, available: 0, messages: [] };
    // The channel's own age bound applies (history.ts trims on read); q.ttlMs is the same bound as the redis engine needs it.
    const page = state.history.read({ since: q.since, until: q.until, limit: Math.max(0, q.limit), maxBytes: q.maxBytes }, q.now);
    return {
      offset: state.offset,
      epoch: state.epoch,
      oldest: state.oldestOffset,
      more: page.more,
      available: page.available,
      messages: page.entries.map((e) => ({ offset: e.offset, time: e.time, push: e.push })),
    };
  }

  rewrite(channel: string, offset: number, push: Buffer): boolean {
    const state = this.channels.get(channel);
    if (!state || offset < 1) return false;
    const entry = state.history.read({ since: offset - 1, until: offset, limit: 1, maxBytes: Number.MAX_SAFE_INTEGER }, Date.now()).entries[0];
    if (!entry || entry.offset !== offset) return false;
    state.history.replace(entry, push);
    return true;
  }

  async save(kind: RecordKind, records: ReadonlyMap<string, unknown>): Promise<void> {
    let map = this.records.get(kind);
    if (!map) this.records.set(kind, (map = new Map()));
    for (const [id, value] of records) {
      if (value === null) map.delete(id);
      else map.set(id, structuredClone(value));
    }
  }

  async load(kind: RecordKind): Promise<Map<string, unknown>> {
    return new Map([...(this.records.get(kind) ?? [])].map(([k, v]) => [k, structuredClone(v)]));
  }
}
