/**
 * Repeated log lines, limited: the first few of a kind in a window are
 * written, the rest counted and summed up in one line when the window ends.
 * A burst of refused tokens or a peer that keeps failing then costs a handful
 * of lines a minute, not one per event. Kinds are a small fixed set chosen by
 * the caller (bounded map).
 */
import type { Logger } from 'pino';

type Level = 'debug' | 'info' | 'warn' | 'error';

interface Window {
  start: number;
  written: number;
  suppressed: number;
  level: Level;
  msg: string;
  timer: NodeJS.Timeout | null;
}

const MAX_KINDS = 1000;

export class RepeatLimiter {
  private readonly windows = new Map<string, Window>();

  constructor(
    private readonly log: Logger,
    private readonly windowMs = 60_000,
    private readonly perWindow = 5,
  ) {}

  write(level: Level, kind: string, fields: Record<string, unknown>, msg: string): void {
    if (!this.log.isLevelEnabled(level)) return;
    const now = Date.now();
    let w = this.windows.get(kind);
    if (!w || now - w.start >= this.windowMs) {
      if (w) this.summarize(kind, w);
      if (this.windows.size >= MAX_KINDS) this.windows.clear();
      w = { start: now, written: 0, suppressed: 0, level, msg, timer: null };
      this.windows.set(kind, w);
    }
    if (w.written < this.perWindow) {
      w.written++;
      this.log[level](fields, msg);
      return;
    }
    w.suppressed++;
    if (!w.timer) {
      const win = w;
      w.timer = setTimeout(() => this.summarize(kind, win), Math.max(0, win.start + this.windowMs - now));
      w.timer.unref();
    }
  }

  private summarize(kind: string, w: Window): void {
    if (w.timer) clearTimeout(w.timer);
    w.timer = null;
    if (w.suppressed === 0) return;
    this.log[w.level]({ kind, repeated: w.suppressed, seconds: Math.round(this.windowMs / 1000) }, `${w.msg} (${w.suppressed} more like this not logged in the last ${Math.round(this.windowMs / 1000)} s)`);
    w.suppressed = 0;
    if (this.windows.get(kind) === w) this.windows.delete(kind);
  }
}
