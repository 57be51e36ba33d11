/**
 * The cluster's presence, kept by the director: connections (with the edge
 * that holds them), users (with their state) and, per channel, which users
 * are there through which connections. Edges report joins and leaves and send
 * heartbeats; connections of an edge instance silent for longer than the
 * time-to-live are removed, so a node killed without a goodbye leaves
 * presence in bounded time. Pure: time comes in as arguments, changes come
 * out as values.
 */
import { ErrorCodes, TidingsError } from '../protocol/errors.js';
import { CompactSet } from '../runtime/compact-set.js';

export interface ConnRecord {
  readonly id: string;
  /** null: anonymous (listed in debug views, never in presence). */
  readonly user: string | null;
  /** Edge id for control messages, null while no edge holds it (registered or detached). */
  edge: string | null;
  /** Edge process incarnation whose heartbeats keep this connection. */
  instance: string | null;
  /** The channel names are the presence's own (one string per channel, not one per report). */
  readonly channels: CompactSet<string>;
  /** Since when no edge holds it; such connections expire after the time-to-live. */
  detachedAt: number | null;
  /** How long this detached connection waits for its client (null: the presence time-to-live). */
  graceMs: number | null;
  /** Registered by the server API (`/connect`): survives its websocket closing until expiry. */
  readonly registered: boolean;
}

export interface UserRecord {
  readonly name: string;
  /** Shared and frozen until the first write: change it through writableState(). */
  state: Record<string, unknown>;
  publicKeys: readonly string[];
  readonly conns: CompactSet<string>;
  lastActive: number;
}

/** A user's first join or last leave of a channel. */
export interface PresenceChange {
  action: 'join' | 'leave';
  channel: string;
  user: string;
}

interface InstanceRecord {
  /** The instance id and edge id every connection record of this instance shares (not a copy per report). */
  readonly id: string;
  readonly edge: string;
  lastSeen: number;
  readonly conns: Set<string>;
}

/** Who is in one channel. */
class ChannelMembers {
  /** Named users here and their connections in this channel. */
  readonly users = new Map<string, CompactSet<string>>();
  /** Anonymous connections here. */
  readonly anonymous = new CompactSet<string>();
  constructor(readonly name: string) {}
}

/** A user's public keys until some are set (shared: an empty array per user is 32 B). */
const NO_KEYS: readonly string[] = Object.freeze([]);
/** A user's state until something is written to it (shared and frozen: an empty object per user is 56 B). */
const NO_STATE: Record<string, unknown> = Object.freeze({});

/** The user's own state object, to change in place (made on the first write). */
export function writableState(u: UserRecord): Record<string, unknown> {
  if (u.state === NO_STATE) u.state = {};
  return u.state;
}

/** Told of changes to registered connections (channelstream catch-up follows them). */
export interface PresenceListener {
  joined(rec: ConnRecord, channel: string): void;
  left(rec: ConnRecord, channel: string): void;
  /** No edge holds the registered connection (just registered, or its client went away). */
  detached(rec: ConnRecord): void;
  /** An edge holds the registered connection again without having asked for it (its report or snapshot says so). */
  reattached(rec: ConnRecord): void;
  removed(rec: ConnRecord): void;
}

export interface SnapshotEntry {
  conn: string;
  user: string | null;
  channels: string[];
}

export class PresenceState {
  readonly conns = new Map<string, ConnRecord>();
  readonly users = new Map<string, UserRecord>();
  /** Channels with at least one connection, named or anonymous. */
  private readonly channels = new Map<string, ChannelMembers>();
  private readonly instances = new Map<string, InstanceRecord>();
  /** Connections no edge holds (detachedAt set), so expiry does not scan every connection. */
  private readonly detached = new Set<string>();

  listener: PresenceListener | null = null;

  constructor(private readonly maxConnections: number) {}

  // --- edges ----------------------------------------------------------------

  /** Record a sign of life; returns whether the instance was known. */
  touchInstance(instance: string, edge: string, now: number): boolean {
    const rec = this.instances.get(instance);
    if (rec) {
      rec.lastSeen = now;
      return true;
    }
    this.instances.set(instance, { id: instance, edge, lastSeen: now, conns: new Set() });
    return false;
  }

  instanceCount(): number {
    return this.instances.size;
  }

  // --- users ----------------------------------------------------------------

  user(name: string, now: number): UserRecord {
    let u = this.users.get(name);
    if (!u) {
      u = { name, state: NO_STATE, publicKeys: NO_KEYS, conns: new CompactSet(), lastActive: now };
      this.users.set(name, u);
    }
    return u;
  }

  /** Forget users with no connection that were idle longer than idleMs. */
  collectUsers(now: number, idleMs: number): number {
    let n = 0;
    for (const [name, u] of this.users) {
      if (u.conns.size === 0 && now - u.lastActive > idleMs) {
        this.users.delete(name);
        n++;
      }
    }
    return n;
  }

  // --- connections ------------------------------------------------------------

  private create(id: string, user: string | null, registered: boolean, now: number): ConnRecord {
    if (this.conns.size >= this.maxConnections) throw new TidingsError(ErrorCodes.LIMIT_EXCEEDED, `at most ${this.maxConnections} connections in presence`);
    const rec: ConnRecord = { id, user, edge: null, instance: null, channels: new CompactSet(), detachedAt: now, graceMs: null, registered };
    this.conns.set(id, rec);
    this.detached.add(id);
    if (registered) this.listener?.detached(rec);
    if (user !== null) {
      const u = this.user(user, now);
      u.conns.add(id);
      u.lastActive = now;
    }
    return rec;
  }

  /** A connection registered by the server API before its client connects. */
  register(id: string, user: string, now: number): ConnRecord {
    const existing = this.conns.get(id);
    if (existing) {
      if (existing.user !== user) throw new TidingsError(ErrorCodes.BAD_REQUEST, `conn_id ${id} belongs to another user`);
      return existing;
    }
    return this.create(id, user, true, now);
  }

  /** An edge holds the connection now (its client connected). */
  attach(id: string, user: string | null, edge: string, instance: string, now: number): ConnRecord {
    let rec = this.conns.get(id);
    if (rec && rec.user !== user) throw new TidingsError(ErrorCodes.BAD_REQUEST, `conn_id ${id} belongs to another user`);
    rec ??= this.create(id, user, false, now);
    const wasDetached = rec.edge === null;
    if (rec.instance !== null && rec.instance !== instance) this.instances.get(rec.instance)?.conns.delete(id);
    this.touchInstance(instance, edge, now);
    const inst = this.instances.get(instance)!;
    rec.edge = inst.edge;
    rec.instance = inst.id;
    rec.detachedAt = null;
    rec.graceMs = null;
    this.detached.delete(id);
    inst.conns.add(id);
    if (rec.registered && wasDetached) this.listener?.reattached(rec);
    return rec;
  }

  /** The edge let the connection go: a registered one waits for its client to return; others are removed. */
  detach(id: string, instance: string | null, now: number, graceMs: number | null = null): PresenceChange[] {
    const rec = this.conns.get(id);
    if (!rec) return [];
    if (instance !== null && rec.instance !== instance) return []; // already held by another edge
    if (!rec.registered) return this.remove(id);
    if (rec.instance !== null) this.instances.get(rec.instance)?.conns.delete(id);
    rec.edge = null;
    rec.instance = null;
    rec.detachedAt = now;
    rec.graceMs = graceMs;
    this.detached.add(id);
    this.listener?.detached(rec);
    return [];
  }

  /** Remove a connection from everything; returns the presence changes. */
  remove(id: string): PresenceChange[] {
    const rec = this.conns.get(id);
    if (!rec) return [];
    const changes: PresenceChange[] = [];
    for (const ch of [...rec.channels]) {
      const c = this.leave(id, ch);
      if (c) changes.push(c);
    }
    this.conns.delete(id);
    this.detached.delete(id);
    if (rec.instance !== null) this.instances.get(rec.instance)?.conns.delete(id);
    if (rec.user !== null) this.users.get(rec.user)?.conns.delete(id);
    if (rec.registered) this.listener?.removed(rec);
    return changes;
  }

  /** Returns the change when this is the user's first connection in the channel. */
  join(id: string, channel: string): PresenceChange | null {
    const rec = this.conns.get(id);
    if (!rec || rec.channels.has(channel)) return null;
    let members = this.channels.get(channel);
    if (!members) this.channels.set(channel, (members = new ChannelMembers(channel)));
    const name = members.name;
    rec.channels.add(name);
    if (rec.registered) this.listener?.joined(rec, name);
    if (rec.user === null) {
      members.anonymous.add(id);
      return null;
    }
    let mine = members.users.get(rec.user);
    const first = !mine;
    if (!mine) members.users.set(rec.user, (mine = new CompactSet()));
    mine.add(id);
    return first ? { action: 'join', channel: name, user: rec.user } : null;
  }

  /** Returns the change when this was the user's last connection in the channel. */
  leave(id: string, channel: string): PresenceChange | null {
    const rec = this.conns.get(id);
    if (!rec || !rec.channels.delete(channel)) return null;
    if (rec.registered) this.listener?.left(rec, channel);
    const members = this.channels.get(channel);
    if (!members) return null;
    let change: PresenceChange | null = null;
    if (rec.user === null) {
      members.anonymous.delete(id);
    } else {
      const mine = members.users.get(rec.user);
      if (mine?.delete(id) === true && mine.size === 0) {
        members.users.delete(rec.user);
        change = { action: 'leave', channel, user: rec.user };
      }
    }
    if (members.users.size === 0 && members.anonymous.size === 0) this.channels.delete(channel);
    return change;
  }

  /** An edge instance that stops says goodbye: its connections leave now, not after the time-to-live. */
  dropInstance(instance: string, now: number): PresenceChange[] {
    const rec = this.instances.get(instance);
    if (!rec) return [];
    this.instances.delete(instance);
    const changes: PresenceChange[] = [];
    for (const id of [...rec.conns]) changes.push(...this.detach(id, instance, now));
    return changes;
  }

  /**
   * Remove the connections of instances silent longer than ttlMs and the
   * detached registered connections whose client did not come back in ttlMs.
   */
  expire(now: number, ttlMs: number): { changes: PresenceChange[]; removed: string[]; instances: string[]; edges: string[] } {
    const changes: PresenceChange[] = [];
    const removed: string[] = [];
    const instances: string[] = [];
    /** Edge ids (`node/eN`) of the expired instances, for logs an operator can read. */
    const edges: string[] = [];
    for (const [instance, rec] of this.instances) {
      if (now - rec.lastSeen <= ttlMs) continue;
      this.instances.delete(instance);
      instances.push(instance);
      edges.push(rec.edge);
      for (const id of rec.conns) {
        removed.push(id);
        changes.push(...this.remove(id));
      }
    }
    for (const id of [...this.detached]) {
      const rec = this.conns.get(id);
      const at = rec?.detachedAt;
      if (at !== null && at !== undefined && now - at > (rec!.graceMs ?? ttlMs)) {
        removed.push(id);
        changes.push(...this.remove(id));
      }
    }
    return { changes, removed, instances, edges };
  }

  /**
   * Make the director's view of one edge instance equal to the edge's own
   * list (after a director restart or an expiry the edge outlived).
   */
  sync(instance: string, edge: string, snapshot: readonly SnapshotEntry[], now: number, attaching?: ReadonlySet<string>): PresenceChange[] {
    this.touchInstance(instance, edge, now);
    const changes: PresenceChange[] = [];
    const listed = new Set(snapshot.map((e) => e.conn));
    // `attaching`: ids the edge was attaching when it took the snapshot; not listed yet, not gone either.
    for (const id of [...this.instances.get(instance)!.conns]) if (!listed.has(id) && !attaching?.has(id)) changes.push(...this.detach(id, instance, now));
    for (const e of snapshot) {
      const rec = this.attach(e.conn, e.user, edge, instance, now);
      const want = new Set(e.channels);
      for (const ch of [...rec.channels]) {
        if (!want.has(ch)) {
          const c = this.leave(e.conn, ch);
          if (c) changes.push(c);
        }
      }
      for (const ch of want) {
        const c = this.join(e.conn, ch);
        if (c) changes.push(c);
      }
    }
    return changes;
  }

  // --- queries --------------------------------------------------------------------

  /** Named users in a channel with their connection ids, sorted by user. */
  usersIn(channel: string): Array<{ user: string; connections: string[] }> {
    const users = this.channels.get(channel)?.users;
    if (!users) return [];
    return [...users.entries()].map(([user, conns]) => ({ user, connections: [...conns].sort() })).sort((a, b) => (a.user < b.user ? -1 : a.user > b.user ? 1 : 0));
  }

  stats(channel: string): { users: number; connections: number } {
    const users = this.channels.get(channel)?.users;
    let connections = 0;
    for (const c of users?.values() ?? []) connections += c.size;
    return { users: users?.size ?? 0, connections };
  }

  /** Every connection in the channel, anonymous ones included. */
  connectionsIn(channel: string): string[] {
    const members = this.channels.get(channel);
    if (!members) return [];
    const out = [...members.anonymous];
    for (const conns of members.users.values()) for (const id of conns) out.push(id);
    return out.sort();
  }

  hasMembers(channel: string): boolean {
    return this.channels.has(channel);
  }

  channelNames(): IterableIterator<string> {
    return this.channels.keys();
  }

  channelCount(): number {
    return this.channels.size;
  }

  /** Channels where a user has connections. */
  channelsOf(user: string): string[] {
    const u = this.users.get(user);
    const out = new Set<string>();
    for (const id of u?.conns ?? []) for (const ch of this.conns.get(id)?.channels ?? []) out.add(ch);
    return [...out].sort();
  }
}
