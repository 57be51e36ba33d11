/**
 * `tidings ticker`: a sample backend worker that publishes a tick to a channel
 * at a fixed interval over ZeroMQ, as docker-compose.yml's `worker` service
 * does. Useful to check a deployment end to end.
 */
import type { CommandModule } from 'yargs';
import { hostname } from 'node:os';
import { createLogger } from '../log.js';
import { Publisher } from '../publisher/publisher.js';
import { addCurveOptions, curveFromArgs, type CurveArgs } from './curve-options.js';

interface TickerArgs extends CurveArgs {
  channel: string;
  interval: number;
  count: number;
  'publisher-address': string;
}

export const tickerCommand: CommandModule<object, TickerArgs> = {
  command: 'ticker',
  describe: 'Sample worker: publish {"tick": n} to a channel every --interval ms over ZeroMQ',
  builder: (y) =>
    addCurveOptions(y)
      .option('channel', { type: 'string', default: 'ticks', describe: 'Channel to publish to' })
      .option('interval', { type: 'number', default: 1000, describe: 'Milliseconds between ticks' })
      .option('count', { type: 'number', default: 0, describe: 'Stop after this many ticks (0: run until stopped)' })
      .option('publisher-address', { type: 'string', default: process.env['TIDINGS_PUBLISHER_ADDRESS'] ?? 'tcp://127.0.0.1:4244', describe: 'Publisher address; with several directors, every one, comma-separated [env TIDINGS_PUBLISHER_ADDRESS]' })
      .check((a) => {
        if (!(a.interval >= 1 && a.interval <= 3_600_000)) throw new Error('--interval must be 1..3600000 ms');
        if (!Number.isInteger(a.count) || a.count < 0) throw new Error('--count must be a non-negative integer');
        curveFromArgs(a);
        return true;
      }),
  handler: async (a) => {
    const log = createLogger((process.env['TIDINGS_LOG_LEVEL'] as 'info') ?? 'info', { component: 'ticker' });
    const pub = new Publisher({ address: a['publisher-address'].split(','), sender: `ticker@${hostname()}`, curve: curveFromArgs(a), log });
    pub.start();
    log.info({ channel: a.channel, interval: a.interval, address: a['publisher-address'], curve: a['curve-secret-key'] !== undefined || a['curve-secret-key-file'] !== undefined }, 'ticker started');
    let n = 0;
    let stopping = false;
    const stop = (): void => {
      if (stopping) return;
      stopping = true;
      clearInterval(timer);
      void pub.close().then(() => process.exit(0));
    };
    const timer = setInterval(() => {
      n++;
      pub.publish(a.channel, { tick: n, time: Date.now() }).catch((err: Error) => log.error({ err: err.message }, 'tick not queued'));
      if (a.count > 0 && n >= a.count) stop();
    }, a.interval);
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  },
};
