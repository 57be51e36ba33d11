/**
 * Commands the director answers on its command address. Bodies are JSON;
 * every failure is a TidingsError with a catalog code.
 */
import type { Logger } from 'pino';
import { ErrorCodes, TidingsError } from '../protocol/errors.js';
import { carriedChannelProblem, channelProblem, isValidUser } from '../protocol/names.js';
import type { Director, PublishOutcome } from './director.js';
import type { MaybePromise } from './engine/engine.js';
import { PUBLISH_BATCH_METHOD, PUBLISH_TEXT_METHOD, PublishEntryReader, PublishOutcomeWriter } from '../cluster/batch.js';
import { encodeHistoryPage, HISTORY_PAGE_BYTES, MAX_HISTORY_PAGE_BYTES, type PageQuery } from './history-page.js';
import { EncodedReply } from './encoded-reply.js';
import { MAX_BODY_DEPTH, checkJsonTextDepth, checkValueDepth } from '../protocol/payload.js';

type Handler = (body: Record<string, unknown>) => unknown;
/** A command whose body is not JSON (binary, parsed by the handler). */
type RawHandler = (body: Buffer) => unknown;

function field<T>(body: Record<string, unknown>, name: string, check: (v: unknown) => v is T, what: string): T {
  const v = body[name];
  if (!check(v)) throw new TidingsError(ErrorCodes.MISSING_FIELD, `${name} must be ${what}`);
  return v;
}

const MAX_HISTORY_REPLY = 10_000;

function optInt(body: Record<string, unknown>, name: string): number | undefined {
  const v = body[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    throw new TidingsError(ErrorCodes.MISSING_FIELD, `${name} must be a non-negative integer`);
  }
  return v;
}

const isString = (v: unknown): v is string => typeof v === 'string';
const isOptString = (v: unknown): v is string | null | undefined => v === undefined || v === null || typeof v === 'string';

export class CommandHandlers {
  private readonly table: Record<string, Handler>;
  /** The last channel a publish_text named that passed the check (an edge's publishes keep naming it). */
  private textChecked: string | null = null;
  private readonly rawTable = new Map<string, RawHandler>([
    [PUBLISH_TEXT_METHOD, (body) => this.publishText(body)],
    [PUBLISH_BATCH_METHOD, (body) => this.publishBatch(body)],
  ]);

  constructor(
    private readonly director: Director,
    private readonly log: Logger,
  ) {
    this.table = {
      ping: () => ({ time: Date.now(), instance: this.director.instance }),
      publish: (b) => this.publish(b),
      history: (b) => this.history(b),
      probe: (b) => {
        const kind = b['kind'];
        if (kind !== 'channel' && kind !== 'user') throw new TidingsError(ErrorCodes.MISSING_FIELD, 'kind must be channel or user');
        return this.director.probe(kind, field(b, 'name', isString, 'a string'), field(b, 'token', isString, 'a string'));
      },
    };
  }

  /** Told of every command that succeeded, after its handler ran (the state mirror's view of changes). */
  readonly observers: Array<(method: string, body: Record<string, unknown>) => void> = [];

  register(method: string, handler: Handler): void {
    this.table[method] = handler;
  }

  /** A command's result, or a promise of it; throws what the command refuses synchronously. */
  dispatch(method: string, raw: Buffer): unknown {
    const rawHandler = this.rawTable.get(method);
    if (rawHandler) return rawHandler(raw);
    const handler = this.table[method];
    if (!handler) throw new TidingsError(ErrorCodes.METHOD_NOT_FOUND, `unknown command ${JSON.stringify(method.slice(0, 64))}`);
    let body: unknown;
    const text = raw.toString('utf8');
    // The command address is a door too (acknowledged publishes, any backend): no command
    // body may carry a value deeper than a payload and its envelope. For cs_message
    // ({messages: [item]}) that is exactly the item's limit; `publish` checks its data too.
    checkJsonTextDepth(text, MAX_BODY_DEPTH);
    try {
      body = JSON.parse(text);
    } catch {
      throw new TidingsError(ErrorCodes.INVALID_JSON, 'command body is not JSON');
    }
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      if (method === 'ping') body = {};
      else throw new TidingsError(ErrorCodes.BAD_REQUEST, 'command body must be a JSON object');
    }
    const result = handler(body as Record<string, unknown>);
    for (const o of this.observers) o(method, body as Record<string, unknown>);
    return result;
  }

  /**
   * history {channel, since?, until?, epoch?, limit?, max_bytes?, raw?, packed?} ->
   * {channel, epoch, offset, complete, more, available, messages}: one page of
   * the range, oldest first (historyPage).
   */
  private history(b: Record<string, unknown>): EncodedReply | Promise<EncodedReply> {
    const channel = field(b, 'channel', isString, 'a string');
    const problem = carriedChannelProblem(channel);
    if (problem) throw new TidingsError(ErrorCodes.INVALID_CHANNEL, problem);
    const maxBytes = Math.min(optInt(b, 'max_bytes') ?? HISTORY_PAGE_BYTES, MAX_HISTORY_PAGE_BYTES);
    const now = Date.now();
    const q: PageQuery = {
      channel,
      since: optInt(b, 'since'),
      until: optInt(b, 'until'),
      limit: Math.min(optInt(b, 'limit') ?? 100, MAX_HISTORY_REPLY),
      maxBytes,
      epoch: field(b, 'epoch', isOptString, 'a string') ?? null,
      raw: b['raw'] === true,
      packed: b['packed'] === true,
      now,
    };
    const engine = this.director.engine;
    // Reading creates the channel (a stream position to recover from), in either engine; the redis
    // engine pipelines both calls, answered in order.
    const created = engine.position(channel, now);
    const page = engine.history(channel, { since: q.since, until: q.until, limit: q.limit, maxBytes, now, ttlMs: this.director.historyLimits(channel).maxAgeMs });
    if (!(page instanceof Promise) && !(created instanceof Promise)) return encodeHistoryPage(page, q);
    return Promise.all([created, page]).then(([, p]) => encodeHistoryPage(p, q));
  }

  /**
   * publish_text <publish entry> -> {offset, epoch}: an edge's publish, the
   * data already JSON text (the edge parsed the client's frame and wrote the
   * data out once), taken as it is: no parse, no second serialisation here.
   */
  private publishText(body: Buffer): unknown {
    let entry: PublishEntryReader;
    try {
      entry = new PublishEntryReader(body, true);
    } catch (err) {
      throw new TidingsError(ErrorCodes.BAD_REQUEST, (err as Error).message);
    }
    entry.next();
    const r = this.publishEntry(entry);
    // The reply is the JSON of the result: {offset, epoch} only (publishBytes' writer holds more).
    return r instanceof Promise ? r : { offset: r.offset, epoch: r.epoch };
  }

  /**
   * publish_batch <publish entries> -> one outcome per entry (src/cluster/batch.ts): an edge's publishes of one
   * turn, each checked and sequenced exactly as publish_text takes it alone, and answered on its own: one
   * refused (its error body in its place, counted as a refused publish command) costs none of the others.
   */
  private publishBatch(body: Buffer): EncodedReply | Promise<EncodedReply> {
    let entries: PublishEntryReader;
    try {
      entries = new PublishEntryReader(body);
    } catch (err) {
      throw new TidingsError(ErrorCodes.BAD_REQUEST, (err as Error).message);
    }
    const out = new PublishOutcomeWriter(entries.count);
    // The redis engine answers with promises (in order): from the first one on, outcomes wait for them all.
    let later: Array<MaybePromise<PublishOutcome | Buffer>> | null = null;
    // The batch's publishes are sequenced in this one synchronous pass: they get one time, read once
    // (a clock read per publish was ~2 % of the director's time in small rooms).
    const now = Date.now();
    while (entries.next()) {
      let r: MaybePromise<PublishOutcome>;
      try {
        r = this.publishEntry(entries, now);
      } catch (err) {
        const refused = this.director.publishRefusal(err);
        if (later) later.push(refused);
        else out.error(refused);
        continue;
      }
      if (r instanceof Promise) (later ??= []).push(r.catch((err: unknown) => this.director.publishRefusal(err)));
      // A byte-path outcome is the writer's, valid until the next publish: kept as its values.
      else if (later) later.push({ offset: r.offset, epoch: r.epoch });
      else out.ok(r.offset, r.epoch);
    }
    if (!later) return new EncodedReply(out.finish());
    return Promise.all(later).then((results) => {
      for (const r of results) {
        if (Buffer.isBuffer(r)) out.error(r);
        else out.ok(r.offset, r.epoch);
      }
      return new EncodedReply(out.finish());
    });
  }

  /** One publish entry of an edge (publish_text, publish_batch): checked, sequenced, its {offset, epoch}. */
  private publishEntry(entry: PublishEntryReader, now = Date.now()): MaybePromise<PublishOutcome> {
    if (!entry.isChannel) throw new TidingsError(ErrorCodes.MISSING_FIELD, 'publish_text publishes to a channel');
    const name = entry.name();
    if (name !== this.textChecked) {
      const problem = channelProblem(name);
      if (problem) throw new TidingsError(ErrorCodes.INVALID_CHANNEL, problem);
      this.textChecked = name;
    }
    // The memory engine takes the data as bytes (checked as JSON on them, the push written from them); anything that
    // path does not take goes as text, as before.
    const sent = this.director.publishBytes(entry, now);
    if (sent !== null) return sent; // valid until the next publish: its offset and epoch are read at once
    const data = entry.data();
    // The command address is a door too: the data's depth is checked on its text, as `publish` checks its value.
    checkJsonTextDepth(data);
    return this.director.publishChannel(name, data, entry.sender(), entry.noHistory);
  }

  /**
   * publish {channel | users[], data, sender?, no_history?} -> {offset, epoch} for a
   * channel, {users: n} for users. The caller (edge or API) has authorised it.
   */
  private publish(b: Record<string, unknown>): unknown {
    if (!('data' in b)) throw new TidingsError(ErrorCodes.MISSING_FIELD, 'data is required');
    checkValueDepth(b['data']);
    const sender = field(b, 'sender', isOptString, 'a string or null') ?? null;
    const dataJson = JSON.stringify(b['data']);
    const noHistory = b['no_history'] === true;
    // A native publish: channels and users by the native rules (docs/protocol.md); channelstream's /message has its own command.
    if (b['channel'] !== undefined) {
      const channel = field(b, 'channel', isString, 'a string');
      const problem = channelProblem(channel);
      if (problem) throw new TidingsError(ErrorCodes.INVALID_CHANNEL, problem);
      return this.director.publishChannel(channel, dataJson, sender, noHistory);
    }
    const users = b['users'];
    if (!Array.isArray(users) || users.length === 0 || users.length > 1000 || !users.every(isString)) {
      throw new TidingsError(ErrorCodes.MISSING_FIELD, 'channel (a string) or users (1-1000 strings) is required');
    }
    if (!users.every(isValidUser)) throw new TidingsError(ErrorCodes.INVALID_USER, 'user must be 1-200 characters without control characters');
    for (const u of users) this.director.publishUser(u, dataJson, sender);
    this.log.debug({ users: users.length }, 'published to users');
    return { users: users.length };
  }
}
