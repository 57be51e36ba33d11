/** `tidings publish`: send messages to a channel or a user over ZeroMQ. */
import type { CommandModule } from 'yargs';
import { createLogger } from '../log.js';
import { Publisher } from '../publisher/publisher.js';
import { addCurveOptions, curveFromArgs, type CurveArgs } from './curve-options.js';

interface PublishArgs extends CurveArgs {
  channel?: string;
  user?: string;
  data: string;
  count: number;
  sender?: string;
  ack: boolean;
  'no-history': boolean;
  'publisher-address': string;
  'command-address': string;
  'max-message-size': number;
  timeout: number;
}

export const publishCommand: CommandModule<object, PublishArgs> = {
  command: 'publish',
  describe: 'Publish a JSON message over ZeroMQ (to --channel or --user)',
  builder: (y) =>
    addCurveOptions(y)
      .option('channel', { type: 'string', describe: 'Channel to publish to' })
      .option('user', { type: 'string', describe: 'User to send to (every connection of the user)' })
      .option('data', { type: 'string', demandOption: true, describe: 'Message data, JSON text' })
      .option('count', { type: 'number', default: 1, describe: 'Send the message this many times' })
      .option('sender', { type: 'string', describe: 'Sender name stamped on the message' })
      .option('ack', { type: 'boolean', default: false, describe: 'Publish over the command address and print offset and epoch' })
      .option('no-history', { type: 'boolean', default: false, describe: 'Keep the message out of history' })
      .option('publisher-address', { type: 'string', default: process.env['TIDINGS_PUBLISHER_ADDRESS'] ?? 'tcp://127.0.0.1:4244', describe: 'Publisher address; with several directors, every one, comma-separated [env TIDINGS_PUBLISHER_ADDRESS]' })
      .option('command-address', { type: 'string', default: process.env['TIDINGS_COMMAND_ADDRESS'] ?? 'tcp://127.0.0.1:4245', describe: 'Command address, for --ack (with CURVE it takes node keys only); with several directors, every one, comma-separated (the active one answers) [env TIDINGS_COMMAND_ADDRESS]' })
      .option('max-message-size', { type: 'number', default: Number(process.env['TIDINGS_MAX_MESSAGE_SIZE'] || 65536), describe: "The node's max_message_size: larger messages are refused here [env TIDINGS_MAX_MESSAGE_SIZE]" })
      .option('timeout', { type: 'number', default: 10, describe: 'Seconds to wait for the director' })
      .check((a) => {
        if ((a.channel === undefined) === (a.user === undefined)) throw new Error('give exactly one of --channel and --user');
        try {
          JSON.parse(a.data);
        } catch {
          throw new Error('--data must be JSON text');
        }
        if (!Number.isInteger(a.count) || a.count < 1 || a.count > 10_000_000) throw new Error('--count must be 1..10000000');
        if (a.ack && a.user !== undefined) throw new Error('--ack works with --channel only');
        curveFromArgs(a);
        return true;
      }),
  handler: async (a) => {
    const log = createLogger('warn', { component: 'publish' });
    const data: unknown = JSON.parse(a.data);
    const pub = new Publisher({
      address: a['publisher-address'].split(','),
      commandAddress: a['command-address'].split(','),
      sender: a.sender ?? null,
      timeoutMs: a.timeout * 1000,
      curve: curveFromArgs(a),
      maxMessageSize: a['max-message-size'],
      log,
    });
    pub.start();
    let code = 0;
    try {
      for (let i = 0; i < a.count; i++) {
        if (a.ack) {
          const r = await pub.publishAcked(a.channel!, data, { noHistory: a['no-history'] });
          process.stdout.write(`${JSON.stringify({ channel: a.channel, ...r })}\n`);
        } else if (a.channel !== undefined) {
          await pub.publish(a.channel, data, { noHistory: a['no-history'] });
        } else {
          await pub.publishToUser(a.user!, data);
        }
      }
      if (!a.ack) {
        await pub.waitReady(a.timeout * 1000);
        await pub.flush(a.timeout * 1000);
        if (pub.pending > 0) throw new Error(`${pub.pending} messages not handed over within ${a.timeout} s`);
      }
    } catch (err) {
      process.stderr.write(`tidings publish: ${(err as Error).message}\n`);
      code = 1;
    }
    await pub.close();
    process.exit(code);
  },
};
