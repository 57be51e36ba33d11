/**
 * Director feature: the WAMP dealer's registry for the whole cluster,
 * answered over the command address.
 *
 *   wamp_register {edge, instance, session, procedure} -> {registration}
 *   wamp_unregister {instance, session, registration} -> {}
 *   wamp_call {procedure, caller: {edge, instance, session, authid}, args?, kwargs?, timeout_ms}
 *       -> {args?, kwargs?} | {error, args?, kwargs?}   (answered when the callee answers)
 *   wamp_answer {instance, session, invocation, args?, kwargs?, error?} -> {delivered}
 *   wamp_session_closed {instance, session} -> {dropped}
 *   wamp_sync {edge, instance, registrations: [{registration, procedure, session}]} -> {revoked}
 *       (every presence_ttl/3 from edges holding registrations: a new director learns them)
 *
 * INVOCATIONs (and INTERRUPTs) go down to the callee's edge process as
 * control messages on its edge topic. The edge's liveness is presence's:
 * when an edge instance's presence expires (kill -9 of its node), its
 * registrations go and its callers get wamp.error.canceled.
 */
import { Gauge, type Registry } from 'prom-client';
import { ErrorCodes, TidingsError } from '../protocol/errors.js';
import { edgeTopic } from '../cluster/topics.js';
import type { ClusterState } from '../director/cluster-state.js';
import { ProcedureRegistry } from './registry.js';
import { isDict, isId, isReservedUri, uriProblem, type Dict } from './messages.js';

/** Registrations the whole cluster holds. */
const MAX_REGISTRATIONS = 100_000;

type Body = Record<string, unknown>;

function str(b: Body, name: string): string {
  const v = b[name];
  if (typeof v !== 'string' || v.length === 0 || v.length > 256) throw new TidingsError(ErrorCodes.MISSING_FIELD, `${name} must be a string of 1-256 characters`);
  return v;
}

function id(b: Body, name: string): number {
  const v = b[name];
  if (!isId(v)) throw new TidingsError(ErrorCodes.MISSING_FIELD, `${name} must be a WAMP ID`);
  return v;
}

function procedure(b: Body): string {
  const p = str(b, 'procedure');
  const problem = uriProblem(p);
  if (problem || isReservedUri(p)) throw new TidingsError(ErrorCodes.WAMP_INVALID_URI, problem ?? `${p}: the wamp. prefix is reserved`);
  return p;
}

function payload(b: Body): { args?: unknown[]; kwargs?: Dict } {
  const out: { args?: unknown[]; kwargs?: Dict } = {};
  if (b['args'] !== undefined && b['args'] !== null) {
    if (!Array.isArray(b['args'])) throw new TidingsError(ErrorCodes.MISSING_FIELD, 'args must be a list');
    out.args = b['args'];
  }
  if (b['kwargs'] !== undefined && b['kwargs'] !== null) {
    if (!isDict(b['kwargs'])) throw new TidingsError(ErrorCodes.MISSING_FIELD, 'kwargs must be a dictionary');
    out.kwargs = b['kwargs'];
  }
  return out;
}

export interface WampDirector {
  readonly registry: ProcedureRegistry;
  stop(): void;
}

export function installWampDirector(state: ClusterState, metrics: Registry): WampDirector {
  const director = state.director;
  const config = director.config;
  const log = state.log.child({ component: 'wamp-registry' });
  const registry = new ProcedureRegistry({
    maxRegistrations: MAX_REGISTRATIONS,
    maxInvocations: config.wamp_max_calls,
    sendToEdge: (edge, body) => director.control(edgeTopic(edge), body),
    // XPUB drops what no subscriber holds: an edge is reachable once its edge topic's subscription arrived.
    reachable: (edge) => director.heldTopics.has(edgeTopic(edge).toString('latin1')),
  });
  new Gauge({
    name: 'tidings_director_wamp_registrations',
    help: 'WAMP procedures registered in the cluster',
    registers: [metrics],
    collect() {
      this.set(registry.registrationCount);
    },
  });
  new Gauge({
    name: 'tidings_director_wamp_calls',
    help: 'WAMP calls in flight in the cluster (INVOCATIONs not answered yet)',
    registers: [metrics],
    collect() {
      this.set(registry.invocationCount);
    },
  });
  state.expiredInstanceHooks.push((instances) => {
    const dropped = registry.instancesGone(instances);
    if (dropped > 0) log.info({ instances, registrations: dropped }, 'dropped WAMP registrations of silent edges');
  });
  const h = director.handlers;
  h.register('wamp_register', (b) => {
    const p = procedure(b);
    const edge = str(b, 'edge');
    const instance = str(b, 'instance');
    // The edge's presence heartbeats keep it alive; a registration from an edge that never reports expires with it.
    state.presence.touchInstance(instance, edge, Date.now());
    const reg = registry.register(p, edge, instance, id(b, 'session'));
    log.debug({ procedure: p, registration: reg.id, edge }, 'registered');
    return { registration: reg.id };
  });
  h.register('wamp_unregister', (b) => {
    registry.unregister({ instance: str(b, 'instance'), session: id(b, 'session') }, id(b, 'registration'));
    return {};
  });
  h.register('wamp_call', (b) => {
    const p = procedure(b);
    const caller = b['caller'];
    if (!isDict(caller)) throw new TidingsError(ErrorCodes.MISSING_FIELD, 'caller must be an object');
    const authid = caller['authid'];
    const requested = b['timeout_ms'];
    const max = config.wamp_call_timeout * 1000;
    const timeoutMs = typeof requested === 'number' && requested > 0 ? Math.min(requested, max) : max;
    return registry.call(p, { instance: str(caller, 'instance'), session: id(caller, 'session') }, { ...payload(b), callerAuthid: typeof authid === 'string' ? authid : null }, timeoutMs);
  });
  h.register('wamp_answer', (b) => {
    const outcome: { error?: string; args?: unknown[]; kwargs?: Dict } = payload(b);
    if (b['error'] !== undefined) {
      const e = str(b, 'error');
      if (uriProblem(e)) throw new TidingsError(ErrorCodes.WAMP_INVALID_URI, `error ${e.slice(0, 64)}`);
      outcome.error = e;
    }
    return { delivered: registry.answer({ instance: str(b, 'instance'), session: id(b, 'session') }, id(b, 'invocation'), outcome) };
  });
  h.register('wamp_sync', (b) => {
    const edge = str(b, 'edge');
    const instance = str(b, 'instance');
    const list = b['registrations'];
    if (!Array.isArray(list) || list.length > MAX_REGISTRATIONS) throw new TidingsError(ErrorCodes.MISSING_FIELD, 'registrations must be a list');
    const held = list.map((e: unknown) => {
      if (!isDict(e)) throw new TidingsError(ErrorCodes.MISSING_FIELD, 'each registration must be an object');
      return { registration: id(e, 'registration'), procedure: procedure(e), session: id(e, 'session') };
    });
    state.presence.touchInstance(instance, edge, Date.now());
    const before = registry.registrationCount;
    const revoked = registry.sync(edge, instance, held);
    if (registry.registrationCount > before) log.info({ edge, restored: registry.registrationCount - before }, 'restored WAMP registrations an edge holds');
    return { revoked };
  });
  h.register('wamp_session_closed', (b) => ({ dropped: registry.sessionClosed({ instance: str(b, 'instance'), session: id(b, 'session') }) }));
  return { registry, stop: () => registry.clear() };
}
