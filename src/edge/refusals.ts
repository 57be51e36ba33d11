/**
 * Reporting a refused authentication of an HTTP request to the edge that
 * serves it, from code that only holds the request (API guards, signature
 * checks): the edge registers each request it routes.
 */
import type { IncomingMessage } from 'node:http';
import { TidingsError } from '../protocol/errors.js';
import type { AuthMethod, EdgeStats } from './stats.js';
import { sourceAddress } from '../http/io.js';

const servedBy = new WeakMap<IncomingMessage, EdgeStats>();

export function registerRequest(req: IncomingMessage, stats: EdgeStats): void {
  servedBy.set(req, stats);
}

/** Count and log (with the reason, source address and path) a refusal; returns the error for `throw`. */
export function refused(req: IncomingMessage, method: AuthMethod, err: TidingsError): TidingsError {
  servedBy.get(req)?.authRefusedBy(method, err.spec.name, err.message, { source: sourceAddress(req), path: req.url?.split('?')[0] });
  return err;
}
