/**
 * `tidings publish`: send messages to a channel or a user over ZeroMQ, and
 * say what was done. The addresses are the settings publisher_address and
 * command_address, read as `serve` reads them (flag, TIDINGS_* variable,
 * config file): a node's own addresses are where its workers publish.
 */
import type { CommandModule } from 'yargs';
import { TidingsError } from '../protocol/errors.js';
import { channelProblem, isValidUser } from '../protocol/names.js';
import { loadSettings, workerAddresses } from './load-config.js';
import { addSettingOptions } from './setting-options.js';
import { addCurveOptions, curveOption, type CurveArgs } from './curve-options.js';
import { boolOption, intOption, orUsage, secondsOption, stringOption, UsageError } from './usage.js';

type PublishArgs = Record<string, unknown> & CurveArgs;

interface Plan {
  channel?: string;
  user?: string;
  data: unknown;
  count: number;
  sender: string | null;
  ack: boolean;
  noHistory: boolean;
  timeout: number;
  publisherAddress: string[];
  commandAddress: string[];
  maxMessageSize: number;
  curve: ReturnType<typeof curveOption>;
}

function plan(a: PublishArgs): Plan {
  const channel = stringOption('channel', a['channel']);
  const user = stringOption('user', a['user']);
  if ((channel === undefined) === (user === undefined)) throw new UsageError('give exactly one of --channel and --user');
  if (channel !== undefined) {
    const problem = channelProblem(channel);
    if (problem) throw new UsageError(`--channel ${JSON.stringify(channel)}: ${problem}`);
  }
  if (user !== undefined && !isValidUser(user)) throw new UsageError(`--user must be 1-200 characters without control characters, got ${JSON.stringify(user)}`);
  const text = stringOption('data', a['data'])!;
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    throw new UsageError(`--data must be JSON text, e.g. '{"text": "hello"}', got ${JSON.stringify(text.slice(0, 60))}`);
  }
  const ack = boolOption('ack', a['ack']);
  if (ack && user !== undefined) throw new UsageError('--ack works with --channel only');
  const { values } = loadSettings(['max_message_size'], a, process.env);
  return {
    ...(channel !== undefined ? { channel } : {}),
    ...(user !== undefined ? { user } : {}),
    data,
    count: a['count'] === undefined ? 1 : intOption('count', a['count'], 1, 10_000_000),
    sender: stringOption('sender', a['sender']) ?? null,
    ack,
    noHistory: boolOption('no-history', a['no-history']),
    timeout: a['timeout'] === undefined ? 10 : secondsOption('timeout', a['timeout'], 3600),
    publisherAddress: workerAddresses('publisher_address', a, process.env),
    commandAddress: workerAddresses('command_address', a, process.env),
    maxMessageSize: values['max_message_size'] as number,
    curve: curveOption(a),
  };
}

/** The reason without the catalog's generic prefix ("director unavailable, try again: ..."). */
function plain(err: Error): string {
  if (!(err instanceof TidingsError)) return err.message;
  const prefix = `${err.spec.message}: `;
  return err.message.startsWith(prefix) ? err.message.slice(prefix.length) : err.message;
}

export const publishCommand: CommandModule<object, PublishArgs> = {
  command: 'publish',
  describe: 'Publish a JSON message over ZeroMQ (to --channel or --user) and say what was done',
  builder: (y) =>
    addCurveOptions(addSettingOptions(y, ['publisher_address', 'command_address', 'max_message_size']))
      .option('channel', { describe: 'Channel to publish to', requiresArg: true })
      .option('user', { describe: 'User to send to (every connection of the user)', requiresArg: true })
      .option('data', { describe: 'Message data, JSON text', demandOption: true, requiresArg: true })
      .option('count', { describe: 'Send the message this many times [integer 1-10000000] [default: 1]', requiresArg: true })
      .option('sender', { describe: 'Sender name stamped on the message', requiresArg: true })
      .option('ack', { describe: 'Publish over the command address and print each offset and epoch (JSON lines) [boolean]' })
      .option('no-history', { describe: 'Keep the message out of history [boolean]' })
      .option('timeout', { describe: 'Seconds to wait for the director [default: 10]', requiresArg: true })
      .group(['channel', 'user', 'data', 'count', 'sender', 'ack', 'no-history', 'timeout'], 'Message:'),
  handler: async (a) => {
    const p = orUsage(() => plan(a));
    const [{ createLogger }, { Publisher }] = await Promise.all([import('../log.js'), import('../publisher/publisher.js')]);
    const log = createLogger('warn', { component: 'publish' });
    const pub = new Publisher({ address: p.publisherAddress, commandAddress: p.commandAddress, sender: p.sender, timeoutMs: p.timeout * 1000, curve: p.curve, maxMessageSize: p.maxMessageSize, log });
    pub.start();
    let code = 0;
    try {
      if (p.ack) {
        for (let i = 0; i < p.count; i++) {
          const r = await pub.publishAcked(p.channel!, p.data, { noHistory: p.noHistory });
          process.stdout.write(`${JSON.stringify({ channel: p.channel, ...r })}\n`);
        }
      } else {
        // Fails fast, with the reason, when nothing listens there or no director is behind it.
        await pub.waitReady(p.timeout * 1000, true);
        for (let i = 0; i < p.count; i++) {
          if (p.channel !== undefined) await pub.publish(p.channel, p.data, { noHistory: p.noHistory });
          else await pub.publishToUser(p.user!, p.data);
        }
        await pub.flush(p.timeout * 1000);
        if (pub.pending > 0) throw new Error(`${pub.pending} messages not handed over within ${p.timeout} s`);
        const what = p.count === 1 ? '1 message' : `${p.count} messages`;
        const to = p.channel !== undefined ? `channel ${p.channel}` : `user ${p.user}`;
        process.stdout.write(`sent ${what} to ${to} through ${p.publisherAddress.join(',')} (add --ack to see offsets)\n`);
      }
    } catch (err) {
      process.stderr.write(`tidings publish: ${plain(err as Error)}\n`);
      code = 1;
    }
    await pub.close();
    process.exit(code);
  },
};
