/**
 * Notices a director restart: the edge pings the director every second and
 * compares the instance id in the reply with the last one. A new instance
 * lost the old one's channel state (in-memory state), so the hub re-probes
 * every live channel: subscribers of a channel whose stream restarted are
 * closed with 4008 and recover the new epoch's history, even when no new
 * message would have shown them the new epoch.
 */
import type { Logger } from 'pino';
import type { CommandClient } from '../zmq/command-client.js';

const INTERVAL_MS = 1000;

export class DirectorWatch {
  private timer: NodeJS.Timeout | null = null;
  private instance: string | null = null;
  private busy = false;

  constructor(
    private readonly commands: CommandClient,
    private readonly onRestart: () => Promise<void>,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.check(), INTERVAL_MS);
    this.timer.unref();
    void this.check();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private async check(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      const r = await this.commands.request<{ instance?: unknown }>('ping', {}, INTERVAL_MS * 2);
      const instance = typeof r.instance === 'string' ? r.instance : null;
      if (instance === null || instance === this.instance) return;
      const previous = this.instance;
      this.instance = instance;
      if (previous === null) return;
      this.log.warn({ previous, instance }, 'the director restarted; checking every channel');
      await this.onRestart();
    } catch {
      // Not answering now (restarting, or busy): the next check sees it.
    } finally {
      this.busy = false;
    }
  }
}
