/**
 * The durable copy of the director's cluster state in the state engine
 * (redis): connections (user, edge, channels, registration), users (state,
 * public keys) and channel configs, as records. The active director keeps
 * working on its in-memory PresenceState and ChannelConfigs; every change is
 * written to the engine at the end of the event-loop turn (one fenced Lua
 * call per kind, in order), and a director that takes over loads them before
 * it answers anything, so presence, registered connections, user state and
 * configs are right from its first command. Edges resend their full lists
 * whenever one of their reports failed during the takeover.
 */
import type { Logger } from 'pino';
import { PresenceState, type ConnRecord, type PresenceChange, type UserRecord } from './presence.js';
import type { RecordKind, RecordStore } from './engine/engine.js';
import type { ChannelConfigs } from './channel-config.js';
import type { CommandHandlers } from './commands.js';

/** Wait before saving records again after a failed save. */
const RETRY_MS = 250;

interface ConnDoc {
  user: string | null;
  edge: string | null;
  instance: string | null;
  channels: string[];
  registered: boolean;
}

interface UserDoc {
  state: Record<string, unknown>;
  publicKeys: readonly string[];
  lastActive: number;
}

/** PresenceState that reports which connections and users each change touched. */
export class MirroredPresence extends PresenceState {
  onConn: (id: string) => void = () => undefined;
  onUser: (name: string) => void = () => undefined;

  override user(name: string, now: number): UserRecord {
    this.onUser(name);
    return super.user(name, now);
  }
  override register(id: string, user: string, now: number): ConnRecord {
    this.onConn(id);
    return super.register(id, user, now);
  }
  override attach(id: string, user: string | null, edge: string, instance: string, now: number): ConnRecord {
    this.onConn(id);
    return super.attach(id, user, edge, instance, now);
  }
  override detach(id: string, instance: string | null, now: number): PresenceChange[] {
    this.onConn(id);
    return super.detach(id, instance, now);
  }
  override remove(id: string): PresenceChange[] {
    this.onConn(id);
    return super.remove(id);
  }
  override join(id: string, channel: string): PresenceChange | null {
    this.onConn(id);
    return super.join(id, channel);
  }
  override leave(id: string, channel: string): PresenceChange | null {
    this.onConn(id);
    return super.leave(id, channel);
  }
  override collectUsers(now: number, idleMs: number): number {
    const before = new Set(this.users.keys());
    const n = super.collectUsers(now, idleMs);
    if (n > 0) for (const name of before) if (!this.users.has(name)) this.onUser(name);
    return n;
  }
}

export class StateMirror {
  private readonly dirty: Record<RecordKind, Set<string>> = { conn: new Set(), user: new Set(), config: new Set() };
  private scheduled = false;
  private restoring = false;
  private failures = 0;

  constructor(
    private readonly store: RecordStore,
    private readonly presence: MirroredPresence,
    private readonly configs: ChannelConfigs,
    private readonly log: Logger,
    /** A failed save, counted by the director's loop guard (the records are saved again shortly). */
    private readonly failed: (err: unknown) => void = () => undefined,
  ) {
    presence.onConn = (id) => this.mark('conn', id);
    presence.onUser = (name) => this.mark('user', name);
  }

  /** Commands that change user state or configs without going through presence. */
  watch(handlers: CommandHandlers): void {
    handlers.observers.push((method, body) => {
      if (method === 'user_state' && typeof body['user'] === 'string') this.mark('user', body['user']);
      const configs = method === 'channel_config' ? body['channels'] : body['channel_configs'];
      if (configs && typeof configs === 'object') for (const ch of Object.keys(configs)) this.mark('config', ch);
      if (Array.isArray(body['channels'])) for (const ch of body['channels']) if (typeof ch === 'string') this.mark('config', ch);
    });
  }

  mark(kind: RecordKind, id: string): void {
    if (this.restoring) return;
    this.dirty[kind].add(id);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.scheduled = false;
    for (const kind of ['config', 'user', 'conn'] as const) {
      const ids = this.dirty[kind];
      if (ids.size === 0) continue;
      const records = new Map<string, unknown>();
      for (const id of ids) records.set(id, this.doc(kind, id));
      ids.clear();
      this.store.save(kind, records).catch((err: Error) => {
        this.failed(err);
        // Fenced: this director stops anyway. Otherwise (Redis restarting) the records are saved again shortly.
        if (this.failures++ % 100 === 0) this.log.warn({ err: err.message, kind, records: records.size }, 'could not save state records; retrying');
        for (const id of records.keys()) this.dirty[kind].add(id);
        if (!this.scheduled) {
          this.scheduled = true;
          setTimeout(() => this.flush(), RETRY_MS).unref();
        }
      });
    }
  }

  private doc(kind: RecordKind, id: string): ConnDoc | UserDoc | unknown | null {
    if (kind === 'conn') {
      const c = this.presence.conns.get(id);
      return c ? ({ user: c.user, edge: c.edge, instance: c.instance, channels: [...c.channels], registered: c.registered } satisfies ConnDoc) : null;
    }
    if (kind === 'user') {
      const u = this.presence.users.get(id);
      return u ? ({ state: u.state, publicKeys: u.publicKeys, lastActive: u.lastActive } satisfies UserDoc) : null;
    }
    return this.configs.has(id) ? this.configs.effective(id) : null;
  }

  /** Load every record into the (empty) in-memory state, as the new active director. */
  async restore(now: number): Promise<{ conns: number; users: number; configs: number }> {
    const [configs, users, conns] = await Promise.all([this.store.load('config'), this.store.load('user'), this.store.load('conn')]);
    this.restoring = true;
    try {
      for (const [ch, cfg] of configs) this.configs.reconfigure(ch, cfg);
      for (const [name, raw] of users) {
        const doc = raw as UserDoc;
        const u = this.presence.user(name, now);
        u.state = doc.state ?? {};
        u.publicKeys = doc.publicKeys ?? [];
        u.lastActive = doc.lastActive ?? now;
      }
      for (const [id, raw] of conns) {
        const doc = raw as ConnDoc;
        try {
          if (doc.registered && doc.user !== null) this.presence.register(id, doc.user, now);
          // Edges get a whole presence_ttl from now to report again before their connections expire.
          if (doc.edge !== null && doc.instance !== null) this.presence.attach(id, doc.user, doc.edge, doc.instance, now);
          for (const ch of doc.channels ?? []) this.presence.join(id, ch);
        } catch (err) {
          this.log.warn({ conn: id, err: (err as Error).message }, 'skipped a connection record');
        }
      }
    } finally {
      this.restoring = false;
    }
    return { conns: conns.size, users: users.size, configs: configs.size };
  }
}
