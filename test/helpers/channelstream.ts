/**
 * A channelstream web app's side of the compatibility tests: requests signed
 * by Debian's Python itsdangerous (`/usr/bin/python3`, python3-itsdangerous),
 * exactly as a Python app does, and a `/ws?conn_id=` client that collects the
 * JSON arrays it receives.
 */
import { execFileSync } from 'node:child_process';
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

export async function csRequest(base: string, path: string, body: unknown, opts: { secret: string; method?: string; signed?: string | null }): Promise<{ status: number; body: any }> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  const token = opts.signed === undefined ? pySign(opts.secret, path) : opts.signed;
  if (token !== null) headers['x-channelstream-secret'] = token;
  const res = await fetch(`${base}${path}`, { method: opts.method ?? 'POST', headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

export class CsClient {
  readonly items: any[] = [];
  readonly frames: unknown[][] = [];
  closeCode: number | null = null;
  private closed: Promise<void>;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => {
      const arr = JSON.parse(data.toString('utf8')) as unknown;
      if (!Array.isArray(arr)) throw new Error(`not an array: ${data.toString('utf8')}`);
      this.frames.push(arr);
      this.items.push(...arr);
    });
    this.closed = new Promise((r) => ws.once('close', (code) => ((this.closeCode = code), r())));
  }

  static async open(wsUrl: string, connId: string): Promise<CsClient> {
    const ws = new WebSocket(`${wsUrl}?conn_id=${encodeURIComponent(connId)}`);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    });
    return new CsClient(ws);
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
