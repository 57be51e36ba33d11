/**
 * The memory engine: today's in-process channel registry behind the engine
 * interface, answering synchronously. State lives as long as the process.
 */
import type { ChannelRegistry } from '../channels.js';
import { assemblePush, type Appended, type AppendRequest, type HistoryPage, type HistoryQuery, type RecordKind, type StateEngine, type StoredMessage, type StreamPosition } from './engine.js';

export class MemoryEngine implements StateEngine {
  readonly kind = 'memory' as const;
  private readonly records = new Map<RecordKind, Map<string, unknown>>();

  constructor(readonly channels: ChannelRegistry) {}

  async start(): Promise<void> {}
  async stop(): Promise<void> {}

  append(req: AppendRequest): Appended {
    const state = this.channels.getOrCreate(req.channel, req.now);
    const o = state.options;
    if (o.historySize !== req.limits.size || o.historyTtlMs !== req.limits.ttlMs) state.options = { historySize: req.limits.size, historyTtlMs: req.limits.ttlMs };
    const offset = state.next(req.now);
    const push = Buffer.from(assemblePush(req.head, offset, state.epoch, req.tail), 'utf8');
    if (req.store) state.remember({ offset, time: req.now, push });
    return { offset, epoch: state.epoch, push };
  }

  position(channel: string, now: number): StreamPosition {
    const state = this.channels.getOrCreate(channel, now);
    return { offset: state.offset, epoch: state.epoch };
  }

  history(channel: string, q: HistoryQuery): HistoryPage {
    const state = this.channels.get(channel);
    if (!state) return { offset: 0, epoch: '', oldest: 1, more: false, messages: [] };
    const limit = Math.max(0, q.limit);
    let entries: StoredMessage[];
    let more = false;
    if (q.since === undefined) {
      entries = state.latest(limit, q.now);
      if (q.maxBytes > 0) {
        let bytes = 0;
        let start = entries.length;
        while (start > 0 && (bytes === 0 || bytes + entries[start - 1]!.push.length <= q.maxBytes)) bytes += entries[--start]!.push.length;
        entries = entries.slice(start);
      }
    } else {
      const page = state.since(q.since, limit + 1, q.now);
      more = page.length > limit;
      entries = page.slice(0, limit);
      if (q.maxBytes > 0) {
        let bytes = 0;
        let n = 0;
        while (n < entries.length && (bytes === 0 || bytes + entries[n]!.push.length <= q.maxBytes)) bytes += entries[n++]!.push.length;
        if (n < entries.length) more = true;
        entries = entries.slice(0, n);
      }
    }
    return { offset: state.offset, epoch: state.epoch, oldest: state.oldestOffset, more, messages: entries.map((e) => ({ offset: e.offset, time: e.time, push: e.push })) };
  }

  rewrite(channel: string, offset: number, push: Buffer): boolean {
    const state = this.channels.get(channel);
    if (!state) return false;
    const entry = state.latest(state.historyLength, Date.now()).find((e) => e.offset === offset);
    if (!entry) return false;
    entry.push = push;
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
