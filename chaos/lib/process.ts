/**
 * One `tidings serve` process of a chaos run: started from dist/, with its
 * output kept (the tail in memory, all of it in a log file when asked), and
 * the signals the scenarios send. Every signal goes to this process' own PID
 * or to its own edge workers, never to anything found by name.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, readFileSync, type WriteStream } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

export { freePort } from '../../test/helpers/ports.js';

const here = dirname(fileURLToPath(import.meta.url));
/** dist/chaos/lib -> dist/src/cli/main.js */
export const CLI = join(here, '..', '..', 'src', 'cli', 'main.js');

const TAIL_CHARS = 20_000;

export class NodeProcess {
  private tail = '';
  private readonly logFile: WriteStream | null;
  readonly exited: Promise<void>;
  readonly child: ChildProcess;

  constructor(
    readonly name: string,
    readonly env: Record<string, string>,
    logPath: string | null,
  ) {
    this.child = spawn(process.execPath, [CLI, 'serve'], { env: { PATH: process.env['PATH'] ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    this.logFile = logPath ? createWriteStream(logPath, { flags: 'a' }) : null;
    const keep = (d: Buffer): void => {
      this.tail = (this.tail + d.toString()).slice(-TAIL_CHARS);
      this.logFile?.write(d);
    };
    this.child.stdout?.on('data', keep);
    this.child.stderr?.on('data', keep);
    this.exited = new Promise((resolve) => this.child.once('exit', () => resolve()));
    live.add(this);
    void this.exited.then(() => {
      live.delete(this);
      this.logFile?.end();
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  output(): string {
    return this.tail;
  }

  async waitFor(pattern: RegExp, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (pattern.test(this.tail)) return;
      if (!this.running) throw new Error(`${this.name} exited (${this.child.exitCode ?? this.child.signalCode}) before ${pattern}:\n${this.tail.slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`${this.name}: no ${pattern} within ${timeoutMs} ms:\n${this.tail.slice(-3000)}`);
  }

  /** Up to a minute: on a loaded machine a node with two workers can take half of that. */
  waitReady(timeoutMs = 60_000): Promise<void> {
    return this.waitFor(/"msg":"node ready"/, timeoutMs);
  }

  /** The node's edge worker processes (node:cluster children), in PID order. */
  workerPids(): number[] {
    try {
      const text = readFileSync(`/proc/${this.pid}/task/${this.pid}/children`, 'utf8').trim();
      return text ? text.split(/\s+/).map(Number).sort((a, b) => a - b) : [];
    } catch {
      return [];
    }
  }

  signal(sig: NodeJS.Signals): void {
    if (this.running) this.child.kill(sig);
  }

  async kill9(): Promise<void> {
    this.signal('SIGKILL');
    await this.exited;
  }

  /** SIGTERM, then SIGKILL after graceMs. Safe to call twice; a stopped process is continued first. */
  async stop(graceMs = 8000): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGCONT');
    this.child.kill('SIGTERM');
    const t = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(t);
  }
}

/** Processes still running, killed if the chaos runner exits early. */
const live = new Set<NodeProcess>();
process.once('exit', () => {
  for (const p of live) {
    for (const w of p.workerPids()) {
      try {
        process.kill(w, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    p.child.kill('SIGKILL');
  }
});
