/** The error a call of the SDK rejects with: a catalog code and name from the server, or timeout/unavailable. */
import { ErrorCodes, type ErrorBody, type ErrorSpec } from '../protocol/errors.js';

export class RequestError extends Error {
  /** Catalog code (src/protocol/errors.ts), e.g. 103 permission_denied, 114 timeout. */
  readonly code: number;
  /** Catalog name, e.g. 'permission_denied'. */
  readonly errorName: string;
  /** Seconds after which the call can succeed, when the server said (136 history_limit). */
  readonly retryAfter: number | undefined;

  constructor(body: ErrorBody) {
    super(body.message);
    this.name = 'RequestError';
    this.code = body.code;
    this.errorName = body.name;
    this.retryAfter = typeof body.retry_after === 'number' ? body.retry_after : undefined;
  }

  static of(spec: ErrorSpec, detail?: string): RequestError {
    return new RequestError({ code: spec.code, name: spec.name, message: detail ? `${spec.message}: ${detail}` : spec.message });
  }
}

const TRANSIENT = new Set<number>([
  ErrorCodes.UNAVAILABLE.code,
  ErrorCodes.TIMEOUT.code,
  ErrorCodes.INTERNAL.code,
  ErrorCodes.TOO_MANY_COMMANDS.code,
]);

/** Errors worth retrying on the same connection (the director may be back, a limit may clear). */
export function isTransient(code: number): boolean {
  return TRANSIENT.has(code);
}
