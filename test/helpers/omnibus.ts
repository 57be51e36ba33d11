/**
 * An omnibus browser client's behaviour, written from the wire facts of
 * omnibus.js (REFERENCE.md): a random identifier, `!authenticate:<id>[:<auth
 * token>]` on open, everything else queued until the authenticate reply says
 * success, `!subscribe:<channel>`, channel messages
 * `<channel>:{"type","sender":<identifier>,"payload"}`, and received channel
 * messages whose sender is its own identifier ignored (ignoreSender). It runs
 * over a `ws` WebSocket or a sockjs-client SockJS, like omnibus.js, which takes
 * either class.
 */
import { randomUUID } from 'node:crypto';
import WebSocket from 'ws';
import SockJS from 'sockjs-client';

export interface OmnibusReply {
  type: string;
  success: boolean;
  payload: any;
}

interface Transport {
  onopen: (() => void) | null;
  onmessage: ((e: { data: string }) => void) | null;
  onclose: ((e: { code: number; reason: string }) => void) | null;
  send(text: string): void;
  close(): void;
}

export class OmnibusClient {
  readonly identifier = randomUUID();
  readonly replies: Array<{ command: string; reply: OmnibusReply }> = [];
  /** Channel messages received (own ones skipped), with the raw frame text. */
  readonly messages: Array<{ channel: string; message: any; raw: string }> = [];
  authenticated = false;
  closeCode: number | null = null;
  private queue: string[] = [];
  private opened: Promise<void>;

  private constructor(
    private readonly socket: Transport,
    authToken: string | null,
    private readonly ignoreSender = true,
  ) {
    this.opened = new Promise((resolve, reject) => {
      socket.onopen = () => {
        socket.send(`!authenticate:${this.identifier}${authToken ? `:${authToken}` : ''}`);
        resolve();
      };
      socket.onclose = (e) => {
        this.closeCode = e.code;
        reject(new Error(`closed ${e.code} ${e.reason}`));
      };
    });
    socket.onmessage = (e) => this.onFrame(e.data);
  }

  /** Over a plain websocket (`ws://host:port/ec`). */
  static websocket(url: string, authToken: string | null = null): Promise<OmnibusClient> {
    const ws = new WebSocket(url);
    const t: Transport = {
      onopen: null,
      onmessage: null,
      onclose: null,
      send: (s) => ws.send(s),
      close: () => ws.close(),
    };
    ws.on('open', () => t.onopen?.());
    ws.on('message', (d: Buffer) => t.onmessage?.({ data: d.toString('utf8') }));
    ws.on('close', (code, reason) => t.onclose?.({ code, reason: reason.toString() }));
    ws.on('error', () => undefined);
    const c = new OmnibusClient(t, authToken);
    return c.opened.then(() => c);
  }

  /** Over SockJS (`http://host:port/ec`), with sockjs-client limited to `transports`. */
  static sockjs(url: string, transports: string[], authToken: string | null = null): Promise<OmnibusClient> {
    const s = new SockJS(url, undefined, { transports }) as unknown as Transport & { transport?: string };
    const c = new OmnibusClient(s, authToken);
    return c.opened.then(() => c);
  }

  private onFrame(data: string): void {
    const at = data.indexOf(':');
    const name = data.slice(0, at);
    const payload = JSON.parse(data.slice(at + 1));
    if (name.startsWith('!')) {
      const command = name.slice(1);
      this.replies.push({ command, reply: payload });
      if (command === 'authenticate' && payload.success) {
        this.authenticated = true;
        for (const q of this.queue.splice(0)) this.socket.send(q);
      }
      return;
    }
    if (this.ignoreSender && payload.sender === this.identifier) return;
    this.messages.push({ channel: name, message: payload, raw: data });
  }

  private sendOrQueue(text: string): void {
    if (this.authenticated) this.socket.send(text);
    else this.queue.push(text);
  }

  /** Send a raw frame now, whatever the state (tests of bad input). */
  raw(text: string): void {
    this.socket.send(text);
  }

  command(command: string, args: string): void {
    this.sendOrQueue(`!${command}:${args}`);
  }

  publish(channel: string, type: string, payload: unknown): void {
    this.sendOrQueue(`${channel}:${JSON.stringify({ type, sender: this.identifier, payload })}`);
  }

  /** The reply to `command` (for `channel`, when given) number `nth` (0 = first). */
  reply(command: string, channel?: string, nth = 0): OmnibusReply | undefined {
    return this.replies.filter((r) => r.command === command && (channel === undefined || r.reply.payload?.channel === channel))[nth]?.reply;
  }

  async waitFor(pred: () => boolean, what: string, timeoutMs = 10000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pred()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last replies ${JSON.stringify(this.replies.slice(-3))} of ${this.replies.length}, messages ${JSON.stringify(this.messages.slice(-5))}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  async waitReply(command: string, channel?: string, nth = 0): Promise<OmnibusReply> {
    await this.waitFor(() => this.reply(command, channel, nth) !== undefined, `!${command} ${channel ?? ''} reply`);
    return this.reply(command, channel, nth)!;
  }

  async subscribe(channel: string): Promise<OmnibusReply> {
    const n = this.replies.filter((r) => r.command === 'subscribe' && r.reply.payload?.channel === channel).length;
    this.command('subscribe', channel);
    return this.waitReply('subscribe', channel, n);
  }

  close(): void {
    this.socket.close();
  }
}
