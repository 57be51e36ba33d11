/**
 * WAMP clients for tests: Autobahn|Python sessions driven through
 * test/helpers/wamp_driver.py (one Python process for a whole test file),
 * Autobahn|JS in this process, and a raw websocket peer that sends hand-made
 * WAMP messages for the protocol's error paths.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import WebSocket from 'ws';

const here = dirname(fileURLToPath(import.meta.url));
/** The driver script, from dist/test/helpers back to the source tree. */
const DRIVER = join(here, '..', '..', '..', 'test', 'helpers', 'wamp_driver.py');
export const PYTHON = '/usr/bin/python3';

export type PyEvent = { ev: string; name?: string; req?: number; [k: string]: any };

export class PyWamp {
  readonly events: PyEvent[] = [];
  private buffer = '';
  private stderr = '';
  private nextReq = 1;
  private exited: Promise<void>;

  private constructor(private readonly child: ChildProcess) {
    child.stdout!.on('data', (d: Buffer) => {
      this.buffer += d.toString('utf8');
      let nl: number;
      while ((nl = this.buffer.indexOf('\n')) >= 0) {
        const line = this.buffer.slice(0, nl);
        this.buffer = this.buffer.slice(nl + 1);
        if (line.trim()) this.events.push(JSON.parse(line) as PyEvent);
      }
    });
    child.stderr!.on('data', (d: Buffer) => {
      this.stderr += d.toString('utf8');
      if (this.stderr.length > 200_000) this.stderr = this.stderr.slice(-100_000);
    });
    this.exited = new Promise((r) => child.once('exit', () => r()));
  }

  static async start(): Promise<PyWamp> {
    const child = spawn(PYTHON, [DRIVER], { stdio: ['pipe', 'pipe', 'pipe'] });
    const py = new PyWamp(child);
    await py.waitFor((e) => e.ev === 'ready', 15000, 'python driver ready');
    return py;
  }

  get pid(): number {
    return this.child.pid!;
  }

  send(cmd: Record<string, unknown>): void {
    this.child.stdin!.write(JSON.stringify(cmd) + '\n');
  }

  /** Send a command with a fresh request number and wait for its answer (any event with that req). */
  async request(cmd: Record<string, unknown>, timeoutMs = 10000): Promise<PyEvent> {
    const req = this.nextReq++;
    this.send({ ...cmd, req });
    return this.waitFor((e) => e.req === req, timeoutMs, `answer to ${JSON.stringify(cmd).slice(0, 200)}`);
  }

  of(name: string, ev: string): PyEvent[] {
    return this.events.filter((e) => e.name === name && e.ev === ev);
  }

  async waitFor(pred: (e: PyEvent) => boolean, timeoutMs: number, what: string): Promise<PyEvent> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.events.find(pred);
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`python: timed out waiting for ${what}\nevents: ${JSON.stringify(this.events.slice(-30))}\nstderr: ${this.stderr.slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    this.send({ op: 'quit' });
    const t = setTimeout(() => this.child.kill('SIGKILL'), 3000);
    await this.exited;
    clearTimeout(t);
  }
}

/** Autobahn|JS (npm `autobahn`), which expects a global WebSocket (Node 22+); `ws` provides one here. */
export function loadAutobahnJs(): any {
  (globalThis as { WebSocket?: unknown }).WebSocket ??= WebSocket;
  return createRequire(import.meta.url)('autobahn');
}

/** Open an Autobahn|JS session with a ticket; resolves with the session. */
export function openJsSession(autobahn: any, url: string, ticket: string, serializer: 'json' | 'msgpack'): Promise<{ session: any; connection: any }> {
  const serializers = serializer === 'json' ? [new autobahn.serializer.JSONSerializer()] : [new autobahn.serializer.MsgpackSerializer()];
  const connection = new autobahn.Connection({
    url,
    realm: 'realm1',
    serializers,
    authmethods: ['ticket'],
    authid: 'js',
    onchallenge: () => ticket,
    max_retries: 0,
  });
  return new Promise((resolve, reject) => {
    connection.onopen = (session: any) => resolve({ session, connection });
    connection.onclose = (reason: string, details: unknown) => {
      reject(new Error(`autobahn-js closed: ${reason} ${JSON.stringify(details)}`));
      return true; // no retry
    };
    connection.open();
  });
}

/** A websocket peer that speaks WAMP by hand (JSON), for error paths. */
export class RawWamp {
  readonly messages: unknown[][] = [];
  closeCode: number | null = null;
  private closed: Promise<void>;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => this.messages.push(JSON.parse(data.toString('utf8')) as unknown[]));
    this.closed = new Promise((r) => ws.once('close', (code) => ((this.closeCode = code), r())));
  }

  static async open(url: string, protocols: string[] = ['wamp.2.json']): Promise<RawWamp> {
    const ws = new WebSocket(url, protocols);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    });
    return new RawWamp(ws);
  }

  /** Open and join with a ticket; returns the peer after WELCOME. */
  static async join(url: string, ticket: string): Promise<RawWamp> {
    const p = await RawWamp.open(url);
    p.send([1, 'realm1', { roles: { publisher: {}, subscriber: {}, caller: {}, callee: {} }, authmethods: ['ticket'], authid: 'raw' }]);
    await p.next((m) => m[0] === 4);
    p.send([5, ticket, {}]);
    const w = await p.next((m) => m[0] === 2 || m[0] === 3);
    if (w[0] !== 2) throw new Error(`not welcomed: ${JSON.stringify(w)}`);
    return p;
  }

  send(message: unknown): void {
    this.ws.send(typeof message === 'string' ? message : JSON.stringify(message));
  }

  async next(pred: (m: unknown[]) => boolean, timeoutMs = 5000): Promise<unknown[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.messages.findIndex(pred);
      if (i >= 0) return this.messages.splice(i, 1)[0]!;
      if (Date.now() > deadline) throw new Error(`no matching WAMP message; got ${JSON.stringify(this.messages).slice(0, 1000)} (close ${this.closeCode})`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  waitClosed(timeoutMs = 5000): Promise<void> {
    return Promise.race([this.closed, new Promise<void>((_, rej) => setTimeout(() => rej(new Error('not closed')), timeoutMs))]);
  }

  close(): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.close();
  }
}
