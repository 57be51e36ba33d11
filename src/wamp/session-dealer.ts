/**
 * The dealer's side of one WAMP session on the edge: as caller (CALL,
 * CANCEL), as callee (REGISTER, UNREGISTER, INVOCATION from the director,
 * YIELD / ERROR back to it). The registry itself is on the director
 * (director-feature.ts); this keeps the session's own bounded maps.
 */
import type { Logger } from 'pino';
import { ErrorCodes, TidingsError } from '../protocol/errors.js';
import { grantsAllow } from '../protocol/names.js';
import { MAX_PAYLOAD_DEPTH, checkValueDepth } from '../protocol/payload.js';
import type { Identity } from '../auth/authenticator.js';
import { errorParts, WampError } from './error-map.js';
import { MAX_ID, Msg, ProtocolViolation, Uri, isDict, isReservedUri, uriProblem, withPayload, type Dict } from './messages.js';
import type { WampEdge } from './edge.js';

/** Per-session bounds of the dealer's side (documented in docs/wamp.md). */
export const DEALER_LIMITS = Object.freeze({
  /** CALLs of this session waiting for their result. */
  calls: 1000,
  /** INVOCATIONs sent to this session (as callee) not yet answered. */
  invocations: 1000,
  /** Procedures this session may hold registered. */
  registrations: 1000,
});

/** What the dealer side needs from its session. */
export interface DealerHost {
  readonly sessionId: number;
  readonly identity: Identity | null;
  readonly state: string;
  readonly wamp: WampEdge;
  readonly log: Logger;
  send(message: unknown[]): void;
  sendError(requestType: Msg, request: number, err: unknown): void;
  clientHas(role: string, feature: string): boolean;
}

export class SessionDealer {
  private readonly registrations = new Map<number, string>();
  private registering = 0;
  private readonly calls = new Map<number, { canceled: boolean }>();
  /** INVOCATION.Request -> the director's invocation ID, and back. */
  private readonly invocations = new Map<number, number>();
  private readonly invocationRequests = new Map<number, number>();
  private nextRequest = 1;

  constructor(private readonly host: DealerHost) {}

  /** Whether a CALL with this request ID is in flight (a second one is a protocol violation). */
  hasCall(request: number): boolean {
    return this.calls.has(request);
  }

  /** Whether the director holds anything of this session (registrations, calls, invocations). */
  get holdsDirectorState(): boolean {
    return this.registrations.size > 0 || this.registering > 0 || this.invocations.size > 0 || this.calls.size > 0;
  }

  clear(): void {
    this.registrations.clear();
    this.invocations.clear();
    this.invocationRequests.clear();
    this.calls.clear();
  }

  private procedureOf(procedure: string): string {
    const problem = uriProblem(procedure) ?? (isReservedUri(procedure) ? 'the wamp. prefix is reserved' : undefined);
    if (problem) throw new TidingsError(ErrorCodes.WAMP_INVALID_URI, `${procedure.slice(0, 100)}: ${problem}`);
    return procedure;
  }

  private checkPayload(args: unknown[] | undefined, kwargs: Dict | undefined): void {
    // The arguments list and the keyword dictionary are one level above the payload values.
    if (args) checkValueDepth(args, MAX_PAYLOAD_DEPTH + 1);
    if (kwargs) checkValueDepth(kwargs, MAX_PAYLOAD_DEPTH + 1);
    const size = JSON.stringify([args ?? [], kwargs ?? {}]).length;
    if (size > this.host.wamp.config.max_message_size) throw new TidingsError(ErrorCodes.PAYLOAD_TOO_LARGE, `${size} bytes > max_message_size ${this.host.wamp.config.max_message_size}`);
  }

  async register(request: number, options: Dict, procedure: string): Promise<void> {
    let counted = false;
    try {
      const match = options['match'];
      if (match !== undefined && match !== 'exact') throw new WampError(Uri.OPTION_NOT_ALLOWED, 'only exact matching registrations');
      const invoke = options['invoke'];
      if (invoke !== undefined && invoke !== 'single') throw new WampError(Uri.OPTION_NOT_ALLOWED, 'only single registrations (one callee per procedure)');
      const p = this.procedureOf(procedure);
      if (!grantsAllow(this.host.identity!.register, p)) throw new TidingsError(ErrorCodes.PERMISSION_DENIED, `may not register ${p}`);
      if (this.registrations.size + this.registering >= DEALER_LIMITS.registrations) {
        throw new TidingsError(ErrorCodes.LIMIT_EXCEEDED, `at most ${DEALER_LIMITS.registrations} registrations per session`);
      }
      this.registering++;
      counted = true;
      const r = await this.host.wamp.edge.commands.request<{ registration: number }>('wamp_register', {
        edge: this.host.wamp.edge.edgeId,
        instance: this.host.wamp.link.instance,
        session: this.host.sessionId,
        procedure: p,
      });
      if (this.host.state === 'closed') {
        // Gone meanwhile: wamp_session_closed went before this reply, so undo it here.
        void this.host.wamp.edge.commands.request('wamp_unregister', { instance: this.host.wamp.link.instance, session: this.host.sessionId, registration: r.registration }).catch(() => undefined);
        return;
      }
      this.registrations.set(r.registration, p);
      this.host.send([Msg.REGISTERED, request, r.registration]);
    } catch (err) {
      this.host.sendError(Msg.REGISTER, request, err);
    } finally {
      if (counted) this.registering--;
    }
  }

  async unregister(request: number, registration: number): Promise<void> {
    if (!this.registrations.has(registration)) {
      this.host.sendError(Msg.UNREGISTER, request, new TidingsError(ErrorCodes.WAMP_NO_SUCH_REGISTRATION, `no registration ${registration} in this session`));
      return;
    }
    this.registrations.delete(registration);
    try {
      await this.host.wamp.edge.commands.request('wamp_unregister', { instance: this.host.wamp.link.instance, session: this.host.sessionId, registration });
      this.host.send([Msg.UNREGISTERED, request]);
    } catch (err) {
      this.host.sendError(Msg.UNREGISTER, request, err);
    }
  }

  async call(request: number, options: Dict, procedure: string, args: unknown[] | undefined, kwargs: Dict | undefined): Promise<void> {
    const entry = { canceled: false };
    try {
      const p = this.procedureOf(procedure);
      if (!grantsAllow(this.host.identity!.call, p)) throw new TidingsError(ErrorCodes.PERMISSION_DENIED, `may not call ${p}`);
      if (this.calls.size >= DEALER_LIMITS.calls) throw new TidingsError(ErrorCodes.LIMIT_EXCEEDED, `at most ${DEALER_LIMITS.calls} calls in flight per session`);
      this.checkPayload(args, kwargs);
      const c = this.host.wamp.config;
      const requested = options['timeout'];
      const max = c.wamp_call_timeout * 1000;
      const timeoutMs = typeof requested === 'number' && requested > 0 ? Math.min(requested, max) : max;
      this.calls.set(request, entry);
      const r = await this.host.wamp.edge.commands.request<{ error?: string; args?: unknown[]; kwargs?: Dict }>(
        'wamp_call',
        {
          procedure: p,
          caller: { edge: this.host.wamp.edge.edgeId, instance: this.host.wamp.link.instance, session: this.host.sessionId, authid: this.host.identity!.user },
          args,
          kwargs,
          timeout_ms: timeoutMs,
        },
        // The director times the call out; this only covers a director that stops answering.
        timeoutMs + c.command_timeout * 1000,
      );
      if (entry.canceled || this.host.state === 'closed') return;
      if (typeof r.error === 'string') this.host.send(withPayload([Msg.ERROR, Msg.CALL, request, {}, r.error], r.args, r.kwargs));
      else this.host.send(withPayload([Msg.RESULT, request, {}], r.args, r.kwargs));
    } catch (err) {
      if (!entry.canceled && this.host.state !== 'closed') this.host.sendError(Msg.CALL, request, err);
    } finally {
      if (this.calls.get(request) === entry) this.calls.delete(request);
    }
  }

  /** CANCEL: the caller gets wamp.error.canceled now; the callee's late answer is discarded ("skip" mode). */
  cancel(request: number): void {
    const entry = this.calls.get(request);
    if (!entry) return; // answered already
    entry.canceled = true;
    this.calls.delete(request);
    this.host.send([Msg.ERROR, Msg.CALL, request, {}, Uri.CANCELED, ['canceled by the caller']]);
  }

  registered(): IterableIterator<[number, string]> {
    return this.registrations.entries();
  }

  /** The director could not restore a registration (another session took the procedure meanwhile). */
  revoke(registration: number): void {
    const procedure = this.registrations.get(registration);
    if (procedure === undefined) return;
    this.registrations.delete(registration);
    this.host.log.warn({ procedure, registration }, 'WAMP registration lost: another session registered the procedure while the director was away');
    // Registration revocation (advanced profile) where the callee takes it.
    if (this.host.clientHas('callee', 'registration_revocation')) this.host.send([Msg.UNREGISTERED, 0, { registration, reason: 'wamp.error.procedure_already_exists' }]);
  }

  /** An INVOCATION for this session (as callee), from the director. */
  invoke(body: Dict): void {
    const invocation = body['invocation'] as number;
    if (this.invocations.size >= DEALER_LIMITS.invocations) {
      this.host.wamp.answerDirector(this.host.sessionId, invocation, { error: Uri.LIMIT_EXCEEDED, args: [`the callee has ${DEALER_LIMITS.invocations} invocations unanswered`] });
      return;
    }
    const request = this.nextRequest;
    this.nextRequest = this.nextRequest >= MAX_ID ? 1 : this.nextRequest + 1;
    this.invocations.set(request, invocation);
    this.invocationRequests.set(invocation, request);
    const details: Dict = { procedure: body['procedure'] };
    if (typeof body['caller_authid'] === 'string') details['caller_authid'] = body['caller_authid'];
    const args = Array.isArray(body['args']) ? body['args'] : undefined;
    const kwargs = isDict(body['kwargs']) ? body['kwargs'] : undefined;
    this.host.send(withPayload([Msg.INVOCATION, request, body['registration'], details], args, kwargs));
  }

  /** The director gave up an invocation (timeout, caller left): INTERRUPT a callee that takes it. */
  interrupt(invocation: number, reason: string): void {
    const request = this.invocationRequests.get(invocation);
    if (request === undefined) return;
    this.invocationRequests.delete(invocation);
    this.invocations.delete(request);
    if (this.host.clientHas('callee', 'call_canceling')) this.host.send([Msg.INTERRUPT, request, { mode: 'killnowait', reason }]);
  }

  answer(request: number, error: string | undefined, args: unknown[] | undefined, kwargs: Dict | undefined): void {
    const invocation = this.invocations.get(request);
    if (invocation === undefined) {
      // An answer to an invocation given up (interrupted) is discarded; one never sent is a violation.
      if (request < this.nextRequest) return;
      throw new ProtocolViolation(`${error === undefined ? 'YIELD' : 'ERROR'} for INVOCATION ${request}, which was never sent`);
    }
    this.invocations.delete(request);
    this.invocationRequests.delete(invocation);
    let outcome: { error?: string; args?: unknown[]; kwargs?: Dict } = { args, kwargs };
    if (error !== undefined) outcome.error = uriProblem(error) ? Uri.INVALID_ARGUMENT : error;
    try {
      this.checkPayload(args, kwargs);
    } catch (err) {
      const e = errorParts(err);
      outcome = { error: e.uri, args: [`the callee's answer was refused: ${e.args[0] as string}`], kwargs: e.kwargs };
    }
    this.host.wamp.answerDirector(this.host.sessionId, invocation, outcome);
  }
}
