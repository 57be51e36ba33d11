/**
 * Every ZeroMQ socket of Tidings is bound or connected through here, so each
 * one gets the same protection:
 *
 * - a maximum message size (ZMQ_MAXMSGSIZE): a peer that sends a larger frame
 *   is disconnected by libzmq before the frame is read, so no peer can make a
 *   node allocate more than the limit;
 * - with CURVE keys configured, encryption and authentication: bound sockets
 *   are CURVE servers whose ZAP domain admits node keys everywhere and worker
 *   keys on publisher addresses only; connecting sockets are CURVE clients
 *   that check the server's public key.
 *
 * Limits: publisher and subscriber addresses take one message (or one
 * subscription) per frame, so `max_message_size` plus an envelope for names
 * and headers. Command addresses, and every socket that connects to a node
 * (which hears only the node it connected to: pushes, history replies,
 * presence lists), carry lists of messages between nodes and take
 * LINK_MESSAGES times that. Tidings' own senders keep within the same limits
 * (CommandClient, Director replies and pushes), so a limit only ever cuts
 * off a foreign or broken peer.
 */
import type { Socket } from 'zeromq';
import type { Logger } from 'pino';
import type { Config } from '../config/resolve.js';
import { zapHandler } from './zap.js';

export type AddressRole = 'subscriber' | 'publisher' | 'command';

/** Bytes allowed around a payload: the channel or user name, headers, command fields. */
export const ENVELOPE_BYTES = 64 * 1024;
/** How many largest messages a frame between nodes may carry (history replies, presence lists). */
export const LINK_MESSAGES = 512;

/** Largest frame on a publisher or subscriber address. */
export function ingressLimit(c: Pick<Config, 'max_message_size'>): number {
  return c.max_message_size + ENVELOPE_BYTES;
}

/** Largest frame on a command address and on every connecting socket (64 MiB with the defaults). */
export function linkLimit(c: Pick<Config, 'max_message_size'>): number {
  return LINK_MESSAGES * ingressLimit(c);
}

export interface CurveClientKeys {
  readonly publicKey: string;
  readonly secretKey: string;
  /** The public key of the server this socket connects to. */
  readonly serverKey: string;
}

/** How a connecting socket protects itself. */
export interface ClientLink {
  readonly curve: CurveClientKeys | null;
  readonly maxMessageSize: number;
}

/**
 * The link a node's connecting socket uses: to the director's addresses
 * (a forwarder's upstream), or to this node's own addresses (edges), which
 * are served by this node's director or forwarder, or else by the director.
 */
export function nodeClientLink(c: Config, server: 'director' | 'local'): ClientLink {
  const maxMessageSize = linkLimit(c);
  if (!c.curve) return { curve: null, maxMessageSize };
  const local = c.director_enabled || c.forwarder_enabled;
  const serverKey = server === 'local' && local ? c.curve.publicKey : c.curve.directorKey;
  return { curve: { publicKey: c.curve.publicKey, secretKey: c.curve.secretKey, serverKey }, maxMessageSize };
}

/**
 * Apply a client link's options to a socket with no connection, then connect
 * it to one address, or to several (one socket to every director of a
 * failover group: they share one server key). Options set on a connected
 * socket apply to its next connections only, so they are set once, first.
 */
export function connectSecured(socket: Socket, address: string | readonly string[], link: ClientLink): void {
  socket.maxMessageSize = link.maxMessageSize;
  if (link.curve) {
    socket.curveServerKey = link.curve.serverKey;
    socket.curvePublicKey = link.curve.publicKey;
    socket.curveSecretKey = link.curve.secretKey;
  }
  for (const a of typeof address === 'string' ? [address] : address) socket.connect(a);
}

/** A bound socket's registration; release it after closing the socket. */
export interface BoundLink {
  readonly curve: boolean;
  release(): Promise<void>;
}

/**
 * Bind a node's socket on one of its three addresses. With CURVE the ZAP
 * handler is bound first and the socket refuses clients if it is not there.
 */
export async function bindSecured(socket: Socket, address: string, role: AddressRole, c: Config, log: Logger): Promise<BoundLink> {
  socket.maxMessageSize = role === 'command' ? linkLimit(c) : ingressLimit(c);
  if (!c.curve) {
    await socket.bind(address);
    return { curve: false, release: () => Promise.resolve() };
  }
  const keys = new Map<string, 'node' | 'worker'>();
  if (role === 'publisher') for (const k of c.curve.workerKeys) keys.set(k, 'worker');
  for (const k of c.curve.nodeKeys) keys.set(k, 'node');
  const domain = await zapHandler.register({ label: `${role} ${address}`, keys, log });
  let released = false;
  const release = (): Promise<void> => {
    if (released) return Promise.resolve();
    released = true;
    return zapHandler.release(domain);
  };
  try {
    socket.curveServer = true;
    socket.curveSecretKey = c.curve.secretKey;
    socket.zapDomain = domain;
    socket.zapEnforceDomain = true;
    await socket.bind(address);
  } catch (err) {
    await release();
    throw err;
  }
  return { curve: true, release };
}
