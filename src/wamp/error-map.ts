/**
 * Errors as WAMP ERROR messages: a Tidings error becomes its standard WAMP
 * URI (or `tidings.error.<name>` where WAMP has none), with the message as
 * the one positional argument and the Tidings code and name as keyword
 * arguments. Pure: no Node imports.
 */
import { ErrorCodes, TidingsError } from '../protocol/errors.js';
import { Uri, type Dict } from './messages.js';

/** An error that already is a WAMP URI (option not allowed, ...). */
export class WampError extends Error {
  constructor(
    readonly uri: string,
    message: string,
  ) {
    super(message);
    this.name = 'WampError';
  }
}

const BY_CODE = new Map<number, string>([
  [ErrorCodes.WAMP_NO_SUCH_PROCEDURE.code, Uri.NO_SUCH_PROCEDURE],
  [ErrorCodes.WAMP_PROCEDURE_EXISTS.code, Uri.PROCEDURE_ALREADY_EXISTS],
  [ErrorCodes.WAMP_NO_SUCH_REGISTRATION.code, Uri.NO_SUCH_REGISTRATION],
  [ErrorCodes.WAMP_CANCELED.code, Uri.CANCELED],
  [ErrorCodes.WAMP_CALL_TIMEOUT.code, Uri.TIMEOUT],
  [ErrorCodes.WAMP_INVALID_URI.code, Uri.INVALID_URI],
  [ErrorCodes.INVALID_CHANNEL.code, Uri.INVALID_URI],
  [ErrorCodes.PERMISSION_DENIED.code, Uri.NOT_AUTHORIZED],
  [ErrorCodes.PAYLOAD_TOO_LARGE.code, Uri.PAYLOAD_SIZE_EXCEEDED],
  [ErrorCodes.PAYLOAD_TOO_DEEP.code, Uri.INVALID_ARGUMENT],
  [ErrorCodes.LIMIT_EXCEEDED.code, Uri.LIMIT_EXCEEDED],
  [ErrorCodes.UNAVAILABLE.code, Uri.NETWORK_FAILURE],
  [ErrorCodes.TIMEOUT.code, Uri.TIMEOUT],
]);

export interface WampErrorParts {
  uri: string;
  args: unknown[];
  kwargs: Dict;
}

export function errorParts(err: unknown): WampErrorParts {
  if (err instanceof WampError) return { uri: err.uri, args: [err.message], kwargs: {} };
  const e = err instanceof TidingsError ? err : new TidingsError(ErrorCodes.INTERNAL);
  return { uri: BY_CODE.get(e.code) ?? `tidings.error.${e.spec.name}`, args: [e.message], kwargs: { code: e.code, name: e.spec.name } };
}
