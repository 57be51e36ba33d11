/**
 * Which of several directors is the active one, as a forwarder (or a
 * Publisher) sees it. Every `intervalMs` it asks each director's command
 * address for its `role`; a director answers {active, token} where token is its lease's fencing token.
 * The one to follow is the active director with the highest token that
 * answered within `staleMs`: a director that was paused and comes back still
 * believing it is active carries an older token and is not followed while the
 * new one answers, and a silent one is left as soon as another claims the lease.
 */
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { CommandClient } from './command-client.js';
import type { ClientLink } from './security.js';

interface Role {
  active: boolean;
  token: number;
  node: string;
}

interface Seen {
  role: Role | null;
  at: number;
}

export interface DirectorWatchOptions {
  commandAddresses: readonly string[];
  /** Keys and size limit of the probing sockets: the same as the upstream sockets' (all directors share one server key). */
  link: ClientLink;
  intervalMs: number;
  staleMs: number;
  highWaterMark: number;
  log: Logger;
  /** A poll that failed in our own code (following a director threw): counted by the owner's loop guard, the next poll goes on. */
  failed?: (err: unknown) => void;
}

export class DirectorWatch extends EventEmitter<{ follow: [index: number, role: Role] }> {
  private readonly clients: CommandClient[];
  private readonly seen: Seen[];
  private timer: NodeJS.Timeout | null = null;
  /** Index of the director followed, or -1. */
  current = -1;
  private currentToken = -1;

  constructor(private readonly opts: DirectorWatchOptions) {
    super();
    this.clients = opts.commandAddresses.map(
      (address) => new CommandClient({ address, link: opts.link, timeoutMs: opts.staleMs, maxInFlight: 4, highWaterMark: opts.highWaterMark, log: opts.log }),
    );
    this.seen = opts.commandAddresses.map(() => ({ role: null, at: 0 }));
  }

  start(): void {
    for (const c of this.clients) c.start();
    this.poll();
    this.timer = setInterval(() => this.poll(), this.opts.intervalMs);
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await Promise.all(this.clients.map((c) => c.stop()));
  }

  private poll(): void {
    this.clients.forEach((client, i) => {
      if (client.inFlight > 0) return; // still waiting for the last answer
      client
        .request<Role>('role', {})
        .then(
          (role) => {
            this.seen[i] = { role, at: Date.now() };
            this.choose();
          },
          () => undefined, // no answer: that director is down or busy; its last answer goes stale
        )
        .catch((err: unknown) => this.fail(err));
    });
  }

  private fail(err: unknown): void {
    if (this.opts.failed) this.opts.failed(err);
    else this.opts.log.error({ err }, 'director watch: following a director failed');
  }

  private choose(): void {
    const now = Date.now();
    let best = -1;
    let bestToken = -1;
    this.seen.forEach((s, i) => {
      if (!s.role?.active || now - s.at > this.opts.staleMs) return;
      if (s.role.token > bestToken) {
        best = i;
        bestToken = s.role.token;
      }
    });
    // Only a higher token replaces the director followed while it still answers as active: never go back to an
    // older active. Once it is silent (or standing by), any active one does (a Redis failover may reset the counter).
    if (best < 0 || best === this.current) return;
    const cur = this.current >= 0 ? this.seen[this.current]! : null;
    const currentAlive = cur !== null && cur.role?.active === true && now - cur.at <= this.opts.staleMs;
    if (currentAlive && bestToken <= this.currentToken) return;
    this.current = best;
    this.currentToken = bestToken;
    this.opts.log.info({ director: best, address: this.opts.commandAddresses[best], node: this.seen[best]!.role!.node, token: bestToken }, 'following the active director');
    this.emit('follow', best, this.seen[best]!.role!);
  }
}
