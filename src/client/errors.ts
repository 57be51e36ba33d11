/** The error a call of the SDK rejects with: a catalog code and name from the server, or timeout/unavailable. */
import { ErrorCodes, type ErrorBody, type ErrorSpec } from '../protocol/errors.js';

export class RequestError extends Error {
  /** Catalog code (src/protocol/errors.ts), e.g. 103 permission_denied, 114 timeout. */
  readonly code: number;
  /** Catalog name, e.g. 'permission_denied'. */
  readonly errorName: string;

  constructor(body: ErrorBody) {
    super(body.message);
    this.name = 'RequestError';
    this.code = body.code;
    this.errorName = body.name;
  }

  static of(spec: ErrorSpec, detail?: string): RequestError {
    return new RequestError({ code: spec.code, name: spec.name, message: detail ? `${spec.message}: ${detail}` : spec.message });
  }
}

/** Errors worth retrying on the same connection (the director may be back). */
export function isTransient(code: number): boolean {
  return code === ErrorCodes.UNAVAILABLE.code || code === ErrorCodes.TIMEOUT.code || code === ErrorCodes.INTERNAL.code;
}
