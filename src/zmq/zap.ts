/**
 * The process' ZAP handler (ZeroMQ RFC 27): libzmq asks it, over
 * inproc://zeromq.zap.01 in the same context, whether a client that completed
 * a CURVE handshake with one of our server sockets may stay. Each server
 * socket has its own ZAP domain, registered here with the public keys it
 * admits; an unknown domain or key is refused. Server sockets also set
 * zapEnforceDomain, so if this handler is not there libzmq refuses every
 * client instead of admitting all of them.
 */
import { Router } from 'zeromq';
import type { Logger } from 'pino';
import { z85Encode } from './keys.js';
import { LogLimiter } from '../runtime/loop-guard.js';

export const ZAP_ENDPOINT = 'inproc://zeromq.zap.01';

export interface Admission {
  /** What the socket is, for logs: e.g. "publisher tcp://0.0.0.0:4244". */
  readonly label: string;
  /** Public keys (Z85) admitted, with the role each has. */
  readonly keys: ReadonlyMap<string, 'node' | 'worker'>;
  readonly log: Logger;
}

/** Denials logged per domain: the first, then at most one line per interval with a count. */
const DENIAL_LOG_INTERVAL_MS = 10_000;

class ZapHandler {
  private router: Router | null = null;
  private loop: Promise<void> | null = null;
  private readonly domains = new Map<string, Admission & { denied: number; loggedAt: number }>();
  private seq = 0;
  /** Serialises start and stop of the router. */
  private chain: Promise<unknown> = Promise.resolve();
  private readonly failureLogs = new LogLimiter();
  /**
   * Set by the process' entry (src/cli): the handler's loop died, so no new
   * ZeroMQ client can be admitted; the process should end and be restarted.
   */
  onDeath: ((err: unknown) => void) | null = null;

  /** Admit `admission.keys` on a new domain; resolves with the domain once the handler is bound. */
  register(admission: Admission): Promise<string> {
    const domain = `tidings-${process.pid}-${++this.seq}`;
    this.domains.set(domain, { ...admission, denied: 0, loggedAt: 0 });
    const started = this.chain.then(() => this.ensureStarted());
    this.chain = started.catch(() => undefined);
    return started.then(() => domain);
  }

  /** Forget a domain (after its socket is closed); the handler stops with its last domain. */
  release(domain: string): Promise<void> {
    this.domains.delete(domain);
    const stopped = this.chain.then(() => (this.domains.size === 0 ? this.stop() : undefined));
    this.chain = stopped.catch(() => undefined);
    return stopped;
  }

  private async ensureStarted(): Promise<void> {
    if (this.router) return;
    const router = new Router({ linger: 0, maxMessageSize: 4096 });
    await router.bind(ZAP_ENDPOINT);
    this.router = router;
    this.loop = this.serve(router);
  }

  private async stop(): Promise<void> {
    const router = this.router;
    if (!router) return;
    this.router = null;
    router.close();
    await this.loop;
    this.loop = null;
  }

  private async serve(router: Router): Promise<void> {
    let failure: unknown = new Error('the ZAP socket stopped delivering requests');
    try {
      for await (const frames of router) {
        // One bad request is skipped (its handshake goes unanswered, so refused); the next is served.
        try {
          const reply = this.answer(frames as Buffer[]);
          if (reply) await router.send(reply);
        } catch (err) {
          if (this.failureLogs.take('zap').log) for (const a of this.domains.values()) a.log.error({ err }, 'ZAP request failed and was skipped');
        }
      }
    } catch (err) {
      failure = err;
    }
    // Closing the router ends the loop; anything else leaves handshakes unanswered (refused).
    if (this.router === router) {
      for (const a of this.domains.values()) a.log.fatal({ err: failure }, 'ZAP handler failed: new ZeroMQ connections will be refused');
      this.onDeath?.(failure);
    }
  }

  /** RFC 27: [route..., '', '1.0', requestId, domain, address, identity, mechanism, credentials...]. */
  private answer(frames: Buffer[]): Buffer[] | null {
    const empty = frames.findIndex((f) => f.length === 0);
    if (empty < 0 || frames.length < empty + 7) return null;
    const route = frames.slice(0, empty + 1);
    const [version, requestId, domainBuf, addressBuf, , mechanismBuf, key] = frames.slice(empty + 1) as Buffer[];
    const respond = (status: string, text: string, userId = ''): Buffer[] => [
      ...route,
      Buffer.from('1.0'),
      requestId ?? Buffer.alloc(0),
      Buffer.from(status),
      Buffer.from(text),
      Buffer.from(userId),
      Buffer.alloc(0),
    ];
    if (version?.toString() !== '1.0') return respond('400', 'unsupported ZAP version');
    const domain = domainBuf!.toString();
    const admission = this.domains.get(domain);
    if (!admission) return respond('400', 'unknown domain');
    const mechanism = mechanismBuf!.toString();
    const publicKey = mechanism === 'CURVE' && key && key.length === 32 ? z85Encode(key) : null;
    const role = publicKey ? admission.keys.get(publicKey) : undefined;
    if (role) return respond('200', 'OK', role);
    const a = this.domains.get(domain)!;
    a.denied++;
    const now = Date.now();
    if (now - a.loggedAt >= DENIAL_LOG_INTERVAL_MS) {
      a.log.warn({ socket: a.label, peer: addressBuf!.toString(), mechanism, key: publicKey, denied: a.denied }, 'refused a ZeroMQ client: key not allowed on this address');
      a.loggedAt = now;
      a.denied = 0;
    }
    return respond('400', 'key not allowed');
  }
}

/** The one handler of this process (one per ZeroMQ context, and Tidings uses the global context). */
export const zapHandler = new ZapHandler();
