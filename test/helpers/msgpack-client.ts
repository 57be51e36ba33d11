/** A native-protocol client on the MessagePack subprotocol, for tests. */
import WebSocket from 'ws';
import { decodeMulti, encode } from '@msgpack/msgpack';
import { signToken } from '../../src/auth/sign.js';
import { TOKEN_SECRET } from './processes.js';
import type { Push } from './client.js';

type Reply = { result?: any; error?: { code: number; name: string; message: string } };

export class MsgpackClient {
  readonly pushes: Push[] = [];
  /** Every reply, in arrival order (a reply sent twice for one id would show here). */
  readonly replies: Array<Reply & { id: number }> = [];
  closeCode: number | null = null;
  private nextId = 1;
  private waiting = new Map<number, (r: Reply) => void>();

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => {
      for (const m of decodeMulti(data) as Iterable<Record<string, unknown>>) {
        if (typeof m['id'] === 'number') {
          this.replies.push(m as never);
          const w = this.waiting.get(m['id']);
          this.waiting.delete(m['id']);
          w?.(m as Reply);
        } else if (m['type'] === 'ping') ws.send(encode({ type: 'pong' }));
        else this.pushes.push(m as Push);
      }
    });
    ws.once('close', (code) => (this.closeCode = code));
  }

  static async connect(url: string, user: string, grants: { subscribe?: string[]; publish?: string[] } = { subscribe: ['*'], publish: ['*'] }): Promise<MsgpackClient> {
    const ws = new WebSocket(url, ['tidings.v1.msgpack']);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    const c = new MsgpackClient(ws);
    const token = await signToken({ secret: TOKEN_SECRET, user, ttl: 3600, ...grants });
    const r = await c.request('connect', { token });
    if (r.error) throw new Error(`connect failed: ${JSON.stringify(r.error)}`);
    return c;
  }

  /** Send a command; `maxDepth` lets a test encode values deeper than the encoder's default 100 levels. */
  request(method: string, params: Record<string, unknown> = {}, timeoutMs = 10000): Promise<Reply> {
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
      this.ws.send(encode({ id, method, params }, { maxDepth: 100_000 }));
    });
  }

  /** Send a frame built by the caller around the command id it is given. */
  requestRaw(build: (id: number) => Uint8Array, timeoutMs = 10000): Promise<Reply> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`no reply to ${id} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(id, (r) => {
        clearTimeout(t);
        resolve(r);
      });
      this.ws.send(build(id));
    });
  }

  async call(method: string, params: Record<string, unknown> = {}): Promise<any> {
    const r = await this.request(method, params);
    if (r.error) throw new Error(`${method} failed: ${JSON.stringify(r.error)}`);
    return r.result;
  }

  async waitFor(pred: () => boolean, timeoutMs = 10000, what = 'condition'): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pred()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  close(): void {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close();
  }
}
