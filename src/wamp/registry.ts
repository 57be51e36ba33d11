/**
 * The cluster's WAMP procedure registry and its calls in flight, kept by the
 * director. A registration belongs to one session on one edge process
 * (instance); a call looks the procedure up, sends an INVOCATION down to the
 * callee's edge and settles when that edge reports the callee's YIELD or
 * ERROR, when the call times out, or when the callee goes away (its session
 * closes, or its edge falls silent and leaves presence). Every map here is
 * bounded. The transport (how an invocation reaches an edge) is injected.
 */
import { ErrorCodes, TidingsError } from '../protocol/errors.js';
import { randomId } from './ids.js';
import { Uri, type Dict } from './messages.js';

export interface Registration {
  readonly id: number;
  readonly procedure: string;
  readonly edge: string;
  readonly instance: string;
  readonly session: number;
}

export interface SessionRef {
  readonly instance: string;
  readonly session: number;
}

/** What a caller gets: the callee's result, or its (or the dealer's) error URI. */
export interface CallOutcome {
  error?: string;
  args?: unknown[];
  kwargs?: Dict;
}

interface Invocation {
  readonly id: number;
  readonly reg: Registration;
  readonly caller: SessionRef;
  readonly timer: ReturnType<typeof setTimeout>;
  resolve(outcome: CallOutcome): void;
  reject(err: TidingsError): void;
}

export interface RegistryOptions {
  maxRegistrations: number;
  maxInvocations: number;
  /** Send a control message to one edge process. */
  sendToEdge(edge: string, body: Record<string, unknown>): void;
  /**
   * Whether a message sent to the edge now reaches it (its subscription to
   * its edge topic is known upstream). A restarted director may learn an
   * edge's registrations before that subscription: an INVOCATION sent then
   * would be dropped, so it waits, up to REACH_WAIT_MS.
   */
  reachable?(edge: string): boolean;
}

/** Longest an INVOCATION waits for its callee's edge to be reachable (at most half the call's timeout), then the call fails (unavailable). */
export const REACH_WAIT_MS = 3000;
const REACH_POLL_MS = 20;

export class ProcedureRegistry {
  private readonly byProcedure = new Map<string, Registration>();
  private readonly byId = new Map<number, Registration>();
  private readonly byInstance = new Map<string, Set<Registration>>();
  private readonly invocations = new Map<number, Invocation>();

  constructor(private readonly opts: RegistryOptions) {}

  get registrationCount(): number {
    return this.byId.size;
  }

  get invocationCount(): number {
    return this.invocations.size;
  }

  lookup(procedure: string): Registration | undefined {
    return this.byProcedure.get(procedure);
  }

  register(procedure: string, edge: string, instance: string, session: number): Registration {
    if (this.byProcedure.has(procedure)) throw new TidingsError(ErrorCodes.WAMP_PROCEDURE_EXISTS, procedure);
    if (this.byId.size >= this.opts.maxRegistrations) throw new TidingsError(ErrorCodes.LIMIT_EXCEEDED, `at most ${this.opts.maxRegistrations} registrations in the cluster`);
    let id = randomId();
    while (this.byId.has(id)) id = randomId();
    const reg: Registration = { id, procedure, edge, instance, session };
    this.add(reg);
    return reg;
  }

  private add(reg: Registration): void {
    this.byProcedure.set(reg.procedure, reg);
    this.byId.set(reg.id, reg);
    let mine = this.byInstance.get(reg.instance);
    if (!mine) this.byInstance.set(reg.instance, (mine = new Set()));
    mine.add(reg);
  }

  /**
   * An edge's list of the registrations its sessions hold (sent every few
   * seconds): ones the director does not know (it restarted, or a standby
   * took over) are restored with their IDs; ones whose procedure another
   * session holds meanwhile are returned as revoked. Never removes anything:
   * a registration just made may not be in the edge's list yet.
   */
  sync(edge: string, instance: string, held: ReadonlyArray<{ registration: number; procedure: string; session: number }>): number[] {
    const revoked: number[] = [];
    for (const h of held) {
      const known = this.byId.get(h.registration);
      if (known) {
        if (known.instance !== instance || known.session !== h.session || known.procedure !== h.procedure) revoked.push(h.registration);
        continue;
      }
      if (this.byProcedure.has(h.procedure) || this.byId.size >= this.opts.maxRegistrations) {
        revoked.push(h.registration);
        continue;
      }
      this.add({ id: h.registration, procedure: h.procedure, edge, instance, session: h.session });
    }
    return revoked;
  }

  /** Remove a registration of this session; its calls in flight are canceled. */
  unregister(owner: SessionRef, id: number): void {
    const reg = this.byId.get(id);
    if (!reg || reg.instance !== owner.instance || reg.session !== owner.session) throw new TidingsError(ErrorCodes.WAMP_NO_SUCH_REGISTRATION, String(id));
    this.drop(reg, 'unregistered');
  }

  /** Call a procedure; settles with the callee's outcome or rejects (no such procedure, timeout, canceled, limit). */
  call(procedure: string, caller: SessionRef, payload: { args?: unknown[]; kwargs?: Dict; callerAuthid: string | null }, timeoutMs: number): Promise<CallOutcome> {
    const reg = this.byProcedure.get(procedure);
    if (!reg) return Promise.reject(new TidingsError(ErrorCodes.WAMP_NO_SUCH_PROCEDURE, procedure));
    if (this.invocations.size >= this.opts.maxInvocations) {
      return Promise.reject(new TidingsError(ErrorCodes.LIMIT_EXCEEDED, `at most ${this.opts.maxInvocations} calls in flight in the cluster`));
    }
    let id = randomId();
    while (this.invocations.has(id)) id = randomId();
    return new Promise<CallOutcome>((resolve, reject) => {
      const timer = setTimeout(() => {
        if (!this.invocations.delete(id)) return;
        this.interrupt(reg, id, 'timeout');
        reject(new TidingsError(ErrorCodes.WAMP_CALL_TIMEOUT, `${procedure} did not answer within ${timeoutMs} ms`));
      }, timeoutMs);
      const inv: Invocation = { id, reg, caller, timer, resolve, reject };
      this.invocations.set(id, inv);
      const body = { op: 'wamp_invocation', session: reg.session, invocation: id, registration: reg.id, procedure, caller_authid: payload.callerAuthid, args: payload.args, kwargs: payload.kwargs };
      const waitUntil = Date.now() + Math.min(REACH_WAIT_MS, timeoutMs / 2);
      const send = (): void => {
        if (this.invocations.get(id) !== inv) return; // ended meanwhile (timeout, callee or caller gone)
        const reachable = this.opts.reachable?.(reg.edge) ?? true;
        if (!reachable && Date.now() < waitUntil) {
          setTimeout(send, REACH_POLL_MS);
          return;
        }
        try {
          if (!reachable) throw new TidingsError(ErrorCodes.UNAVAILABLE, `the callee's node is not connected to the director`);
          this.opts.sendToEdge(reg.edge, body);
        } catch (err) {
          this.invocations.delete(id);
          clearTimeout(timer);
          reject(err instanceof TidingsError ? err : new TidingsError(ErrorCodes.UNAVAILABLE, (err as Error).message));
        }
      };
      send();
    });
  }

  /**
   * The callee's answer (YIELD, or ERROR with `outcome.error`). Only the
   * callee's own session may answer; an answer to a call that already ended
   * (timed out, canceled) is discarded, as the spec asks. Returns whether it
   * reached a caller.
   */
  answer(callee: SessionRef, invocation: number, outcome: CallOutcome): boolean {
    const inv = this.invocations.get(invocation);
    if (!inv || inv.reg.instance !== callee.instance || inv.reg.session !== callee.session) return false;
    this.invocations.delete(invocation);
    clearTimeout(inv.timer);
    inv.resolve(outcome);
    return true;
  }

  /** A session ended: its registrations go, calls to it are canceled, its own calls in flight are given up. */
  sessionClosed(ref: SessionRef): number {
    let dropped = 0;
    for (const reg of [...(this.byInstance.get(ref.instance) ?? [])]) {
      if (reg.session !== ref.session) continue;
      this.drop(reg, 'callee left');
      dropped++;
    }
    for (const inv of [...this.invocations.values()]) {
      if (inv.caller.instance !== ref.instance || inv.caller.session !== ref.session) continue;
      // The caller left: nobody waits for the result (spec: INTERRUPT killnowait to a callee that can take it).
      this.invocations.delete(inv.id);
      clearTimeout(inv.timer);
      this.interrupt(inv.reg, inv.id, 'caller left');
      inv.reject(new TidingsError(ErrorCodes.WAMP_CANCELED, 'caller left'));
    }
    return dropped;
  }

  /** Edge processes that died (their presence expired): their registrations and calls to them go. */
  instancesGone(instances: readonly string[]): number {
    let dropped = 0;
    for (const instance of instances) {
      for (const reg of [...(this.byInstance.get(instance) ?? [])]) {
        this.drop(reg, 'callee node gone');
        dropped++;
      }
      // Calls made from a dead edge: nobody will read the answer.
      for (const inv of [...this.invocations.values()]) {
        if (inv.caller.instance !== instance) continue;
        this.invocations.delete(inv.id);
        clearTimeout(inv.timer);
        this.interrupt(inv.reg, inv.id, 'caller left');
        inv.reject(new TidingsError(ErrorCodes.WAMP_CANCELED, 'caller node gone'));
      }
    }
    return dropped;
  }

  private drop(reg: Registration, why: string): void {
    this.byId.delete(reg.id);
    if (this.byProcedure.get(reg.procedure) === reg) this.byProcedure.delete(reg.procedure);
    const mine = this.byInstance.get(reg.instance);
    mine?.delete(reg);
    if (mine && mine.size === 0) this.byInstance.delete(reg.instance);
    for (const inv of [...this.invocations.values()]) {
      if (inv.reg !== reg) continue;
      this.invocations.delete(inv.id);
      clearTimeout(inv.timer);
      inv.reject(new TidingsError(ErrorCodes.WAMP_CANCELED, `${reg.procedure}: ${why} before answering`));
    }
  }

  /**
   * Tell the callee's edge an invocation was given up: the edge forgets it
   * (its map of unanswered invocations is bounded in time by this) and sends
   * INTERRUPT to a callee that announced call_canceling.
   */
  private interrupt(reg: Registration, invocation: number, reason: string): void {
    if (!this.byId.has(reg.id)) return;
    try {
      this.opts.sendToEdge(reg.edge, { op: 'wamp_interrupt', session: reg.session, invocation, reason: reason === 'timeout' ? Uri.TIMEOUT : Uri.CANCELED });
    } catch {
      // The callee's edge is unreachable: nothing to interrupt.
    }
  }

  /** Every timer stopped and every call rejected (director stopping). */
  clear(): void {
    for (const inv of this.invocations.values()) {
      clearTimeout(inv.timer);
      inv.reject(new TidingsError(ErrorCodes.UNAVAILABLE, 'director stopping'));
    }
    this.invocations.clear();
  }
}
