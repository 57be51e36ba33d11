/**
 * A channelstream web app's side of the compatibility tests: requests signed
 * by Debian's Python itsdangerous (`/usr/bin/python3`, python3-itsdangerous),
 * exactly as a Python app does, a `/ws?conn_id=` client that keeps the JSON
 * arrays it receives frame by frame, and a `/listen` long-poll client.
 */
import { execFileSync, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import WebSocket from 'ws';

export const PYTHON = '/usr/bin/python3';

const SIGN = `
import sys, time
from itsdangerous import TimestampSigner
secret, value, shift = sys.argv[1], sys.argv[2], int(sys.argv[3])
class Shifted(TimestampSigner):
    def get_timestamp(self):
        return int(time.time()) + shift
signer = TimestampSigner(secret) if shift == 0 else Shifted(secret)
sys.stdout.write(signer.sign(value).decode())
`;

/** `TimestampSigner(secret).sign(value)`; `shiftS` moves the signer's clock (expired / future tests). */
export function pySign(secret: string, value: string, shiftS = 0): string {
  return execFileSync(PYTHON, ['-c', SIGN, secret, value, String(shiftS)], { timeout: 10_000 }).toString('utf8');
}

const SIGN_LOOP = `
import sys, json, time
from itsdangerous import TimestampSigner
class Shifted(TimestampSigner):
    shift = 0
    def get_timestamp(self):
        return int(time.time()) + self.shift
for line in sys.stdin:
    secret, value, shift = json.loads(line)
    signer = Shifted(secret)
    signer.shift = shift
    sys.stdout.write(signer.sign(value).decode() + "\\n")
    sys.stdout.flush()
`;

/**
 * One Python process that signs request after request (a process per request
 * would cost 50 ms each). It stops itself after a second without work, so a
 * test file that never calls stop() still ends.
 */
class PySigner {
  private proc: ChildProcessWithoutNullStreams | null = null;
  private buffered = '';
  private readonly waiting: Array<(token: string) => void> = [];
  private idle: NodeJS.Timeout | null = null;

  /** `TimestampSigner(secret).sign(value)`, the signer's clock moved by `shiftS`. */
  sign(secret: string, value: string, shiftS = 0): Promise<string> {
    if (!this.proc) {
      const proc = spawn(PYTHON, ['-u', '-c', SIGN_LOOP]);
      proc.stdout.setEncoding('utf8');
      proc.stdout.on('data', (chunk: string) => {
        this.buffered += chunk;
        let nl;
        while ((nl = this.buffered.indexOf('\n')) >= 0) {
          const line = this.buffered.slice(0, nl);
          this.buffered = this.buffered.slice(nl + 1);
          this.waiting.shift()?.(line);
        }
        if (this.waiting.length === 0) {
          this.idle = setTimeout(() => this.stop(), 1000);
          this.idle.unref();
        }
      });
      this.proc = proc;
    }
    if (this.idle) clearTimeout(this.idle);
    this.idle = null;
    return new Promise((resolve) => {
      this.waiting.push(resolve);
      this.proc!.stdin.write(JSON.stringify([secret, value, shiftS]) + '\n');
    });
  }

  stop(): void {
    if (this.idle) clearTimeout(this.idle);
    this.idle = null;
    this.proc?.kill();
    this.proc = null;
    this.buffered = '';
  }
}

export const pySigner = new PySigner();

export interface CsResponse {
  status: number;
  body: any;
  headers: Headers;
}

export async function csRequest(base: string, path: string, body: unknown, opts: { secret: string; method?: string; signed?: string | null; headers?: Record<string, string> }): Promise<CsResponse> {
  const headers: Record<string, string> = { 'content-type': 'application/json', ...opts.headers };
  const token = opts.signed === undefined ? await pySigner.sign(opts.secret, path.split('?')[0]!) : opts.signed;
  if (token !== null) headers['x-channelstream-secret'] = token;
  const res = await fetch(`${base}${path}`, { method: opts.method ?? 'POST', headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null, headers: res.headers };
}

export class CsClient {
  readonly items: any[] = [];
  readonly frames: unknown[][] = [];
  closeCode: number | null = null;
  closeReason = '';
  private closed: Promise<void>;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => {
      const arr = JSON.parse(data.toString('utf8')) as unknown;
      if (!Array.isArray(arr)) throw new Error(`not an array: ${data.toString('utf8')}`);
      this.frames.push(arr);
      this.items.push(...arr);
    });
    this.closed = new Promise((r) =>
      ws.once('close', (code, reason) => {
        this.closeCode = code;
        this.closeReason = reason.toString('utf8');
        r();
      }),
    );
  }

  static async open(wsUrl: string, connId: string): Promise<CsClient> {
    const ws = new WebSocket(`${wsUrl}?conn_id=${encodeURIComponent(connId)}`);
    // Listening before 'open': frames that come in the same read as the handshake are emitted at once.
    const client = new CsClient(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    });
    return client;
  }

  async waitFor(pred: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pred()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; got ${JSON.stringify(this.items).slice(0, 2000)}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  of(type: string): any[] {
    return this.items.filter((i) => i.type === type);
  }

  waitClosed(timeoutMs = 5000): Promise<void> {
    return Promise.race([this.closed, new Promise<void>((_, rej) => setTimeout(() => rej(new Error('not closed')), timeoutMs))]);
  }

  close(): void {
    this.ws.close();
  }
}

/** One long poll: `GET /listen?conn_id=` as channelstream's JS client sends it. */
export async function listen(base: string, connId: string, query = ''): Promise<{ status: number; body: any; text: string; headers: Headers; ms: number }> {
  const started = Date.now();
  const res = await fetch(`${base}/listen?conn_id=${encodeURIComponent(connId)}${query}`);
  const text = await res.text();
  let body: unknown = null;
  try {
    body = JSON.parse(text);
  } catch {
    body = null;
  }
  return { status: res.status, body, text, headers: res.headers, ms: Date.now() - started };
}
