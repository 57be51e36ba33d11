/**
 * The director's state engine: where channel sequences (offset, epoch) and
 * history live, and the durable copy of the rest of the director's state
 * (channel configs, user state, connections and presence). Two engines
 * implement it: `memory` (this process, the zero-setup default) and `redis`
 * (shared by several directors, one active at a time; see lease.ts). The
 * engine suite (test/integration/state-engine.test.ts) runs against both.
 *
 * Sequencing is the one hot call: `append` assigns the next offset and stores
 * the message in history in one atomic step, so an offset is never handed out
 * without its message being stored, and (redis) never by a director that lost
 * its lease. The memory engine answers synchronously (no promise on the hot
 * path); the redis engine with a promise. Callers await `MaybePromise` values
 * only when they are promises, and must issue calls in the order they want
 * them applied: each engine applies and answers calls in issue order.
 */

export type MaybePromise<T> = T | Promise<T>;

/** Bounds of one channel's history (history.ts): count, age, bytes (push + ENTRY_OVERHEAD per message). */
export type { HistoryLimits } from '../history.js';
import type { HistoryLimits } from '../history.js';
import type { MessagePushBytes } from '../push-encoding.js';

export interface AppendRequest {
  channel: string;
  /** The encoded client push around the offset and epoch, built by push-encoding.ts. */
  head: string;
  tail: string;
  now: number;
  /** false: sequenced but not kept in history (no_history). */
  store: boolean;
  limits: HistoryLimits;
}

export interface StreamPosition {
  offset: number;
  epoch: string;
}

/** What `append` answers: the position, and the encoded push when the engine built it anyway. */
export interface Appended extends StreamPosition {
  push?: Buffer;
}

export interface StoredMessage {
  offset: number;
  time: number;
  /** The encoded client push, exactly as it was sent. */
  push: Buffer;
}

export interface HistoryQuery {
  /** Messages after this offset; undefined: the newest `limit` (up to `until`). */
  since?: number;
  /** Messages up to this offset (inclusive). */
  until?: number;
  /** Most messages in this page. */
  limit: number;
  /** Most bytes of pushes in this page (the first message is always returned, whatever its size). */
  maxBytes: number;
  now: number;
  /** Entries older than this are expired on read (the channel's history age bound; 0: none). */
  ttlMs: number;
}

export interface HistoryPage extends StreamPosition {
  /** The oldest offset still in history, or offset + 1 when it is empty. */
  oldest: number;
  messages: StoredMessage[];
  /** The page stopped at maxBytes before `limit` messages while more of the range remain (read on from the last offset). */
  more: boolean;
  /** Messages of the whole range (capped by limit), this page included. */
  available: number;
}

/** What a sequencing engine must answer; one implementation per engine. */
export interface ChannelEngine {
  readonly kind: 'memory' | 'redis';
  /**
   * Sequence a message (and store it unless !store), keeping the channel's
   * history within `limits` and the engine's history within its total byte
   * bound; rejects with FENCED (156) when this director is no longer the active one.
   */
  append(req: AppendRequest): MaybePromise<Appended>;
  /**
   * append() for an engine that builds pushes in this process (memory), with
   * the push written as bytes by `push` (push-encoding.ts MessagePushBytes):
   * sequences the message, places `push` at its offset and epoch and returns
   * its bytes; `push.offset` and `push.epoch` say where it stands. Absent where the push is built
   * elsewhere (redis: in Lua), and callers then use append().
   */
  appendBytes?(channel: string, now: number, store: boolean, limits: HistoryLimits, push: MessagePushBytes): Buffer;
  /** Where the channel's stream stands, creating the channel (a new epoch) when it has no state. */
  position(channel: string, now: number): MaybePromise<StreamPosition>;
  /** A page of history. Does not create the channel; an unknown channel reads as offset 0 with an empty epoch. */
  history(channel: string, q: HistoryQuery): MaybePromise<HistoryPage>;
  /** Replace the stored push of one message (channelstream edit and delete); false when it is no longer kept. */
  rewrite(channel: string, offset: number, push: Buffer): MaybePromise<boolean>;
}

/** The durable copy of the director's other state, as JSON records by key. */
export interface RecordStore {
  /** Save (or with null, delete) records of a kind; applied in call order. */
  save(kind: RecordKind, records: ReadonlyMap<string, unknown | null>): Promise<void>;
  /** Every record of a kind (at takeover). */
  load(kind: RecordKind): Promise<Map<string, unknown>>;
}

/** Kinds of records: channel configs, users (state, public keys), connections (user, channels, registration). */
export type RecordKind = 'config' | 'user' | 'conn';

export interface StateEngine extends ChannelEngine, RecordStore {
  start(): Promise<void>;
  stop(): Promise<void>;
}

export { assemblePush } from '../push-encoding.js';
