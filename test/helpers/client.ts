/** A minimal native-protocol websocket client for tests (the SDK has its own tests). */
import WebSocket from 'ws';
import { signToken } from '../../src/auth/sign.js';
import { TOKEN_SECRET } from './processes.js';

export interface Push {
  type: string;
  channel?: string;
  offset?: number;
  epoch?: string;
  sender?: string | null;
  data?: unknown;
  [k: string]: unknown;
}

export class TestClient {
  readonly pushes: Push[] = [];
  closeCode: number | null = null;
  closeReason = '';
  /** The connect reply's result (client id, user, node, ...). */
  session: { client: string; user: string | null; node: string; ping: number } | null = null;
  private nextId = 1;
  private waiting = new Map<number, (reply: { result?: unknown; error?: { code: number; name: string; message: string } }) => void>();
  private closed: Promise<void>;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => {
      for (const line of data.toString('utf8').split('\n')) {
        if (!line) continue;
        const msg = JSON.parse(line) as Record<string, unknown>;
        if (typeof msg['id'] === 'number') {
          const w = this.waiting.get(msg['id']);
          this.waiting.delete(msg['id']);
          w?.(msg as never);
        } else if (msg['type'] === 'ping') {
          ws.send('{"type":"pong"}');
        } else {
          this.pushes.push(msg as Push);
        }
      }
    });
    this.closed = new Promise((resolve) =>
      ws.once('close', (code, reason) => {
        this.closeCode = code;
        this.closeReason = reason.toString();
        resolve();
      }),
    );
  }

  static async open(url: string, protocols?: string[]): Promise<TestClient> {
    const ws = new WebSocket(url, protocols);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    });
    return new TestClient(ws);
  }

  /** Open and authenticate with a token for `user` with the given grants. */
  static async connect(url: string, user: string, grants: { subscribe?: string[]; publish?: string[] } = { subscribe: ['*'], publish: ['*'] }, ttl = 3600): Promise<TestClient> {
    const c = await TestClient.open(url);
    const token = await signToken({ secret: TOKEN_SECRET, user, ttl, ...grants });
    const r = await c.request('connect', { token });
    if (r.error) throw new Error(`connect failed: ${JSON.stringify(r.error)}`);
    c.session = r.result;
    return c;
  }

  request(method: string, params: Record<string, unknown> = {}, timeoutMs = 10000): Promise<{ result?: any; error?: { code: number; name: string; message: string } }> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`no reply to ${method} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(id, (r) => {
        clearTimeout(t);
        resolve(r);
      });
      this.ws.send(JSON.stringify({ id, method, params }));
    });
  }

  /** Request and expect success; returns the result. */
  async call(method: string, params: Record<string, unknown> = {}): Promise<any> {
    const r = await this.request(method, params);
    if (r.error) throw new Error(`${method} failed: ${JSON.stringify(r.error)}`);
    return r.result;
  }

  messages(channel: string): Push[] {
    return this.pushes.filter((p) => p.type === 'message' && p.channel === channel);
  }

  async waitFor(pred: () => boolean, timeoutMs = 10000, what = 'condition'): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pred()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  waitClosed(timeoutMs = 10000): Promise<void> {
    return Promise.race([
      this.closed,
      new Promise<void>((_, reject) => setTimeout(() => reject(new Error('connection not closed in time')), timeoutMs)),
    ]);
  }

  close(): void {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close();
  }
}
