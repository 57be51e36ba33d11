/**
 * `tidings ticker`: a sample backend worker that publishes a tick to a channel
 * at a fixed interval over ZeroMQ, as docker-compose.yml's `worker` service
 * does. Useful to check a deployment end to end.
 */
import type { CommandModule } from 'yargs';
import { hostname } from 'node:os';
import { channelProblem } from '../protocol/names.js';
import type { LogFormat } from '../log.js';
import type { LogLevel } from '../config/resolve.js';
import { loadSettings, workerAddresses } from './load-config.js';
import { addSettingOptions } from './setting-options.js';
import { addCurveOptions, curveOption, type CurveArgs } from './curve-options.js';
import { intOption, orUsage, stringOption, UsageError } from './usage.js';

type TickerArgs = Record<string, unknown> & CurveArgs;

export const tickerCommand: CommandModule<object, TickerArgs> = {
  command: 'ticker',
  describe: 'Sample worker: publish {"tick": n} to a channel every --interval ms over ZeroMQ',
  builder: (y) =>
    addCurveOptions(addSettingOptions(y, ['publisher_address', 'log_level', 'log_format']))
      .option('channel', { describe: 'Channel to publish to [default: ticks]', requiresArg: true })
      .option('interval', { describe: 'Milliseconds between ticks [integer 1-3600000] [default: 1000]', requiresArg: true })
      .option('count', { describe: 'Stop after this many ticks (0: run until stopped) [default: 0]', requiresArg: true })
      .group(['channel', 'interval', 'count'], 'Ticks:'),
  handler: async (a) => {
    const t = orUsage(() => {
      const channel = stringOption('channel', a['channel']) ?? 'ticks';
      const problem = channelProblem(channel);
      if (problem) throw new UsageError(`--channel ${JSON.stringify(channel)}: ${problem}`);
      const { values } = loadSettings(['log_level', 'log_format'], a, process.env);
      return {
        channel,
        interval: a['interval'] === undefined ? 1000 : intOption('interval', a['interval'], 1, 3_600_000),
        count: a['count'] === undefined ? 0 : intOption('count', a['count'], 0, Number.MAX_SAFE_INTEGER),
        address: workerAddresses('publisher_address', a, process.env),
        level: values['log_level'] as LogLevel,
        format: values['log_format'] as LogFormat,
        curve: curveOption(a),
      };
    });
    const [{ createLogger }, { Publisher }] = await Promise.all([import('../log.js'), import('../publisher/publisher.js')]);
    const log = createLogger(t.level, { component: 'ticker' }, t.format);
    const pub = new Publisher({ address: t.address, sender: `ticker@${hostname()}`, curve: t.curve, log });
    pub.start();
    log.info({ channel: t.channel, interval: t.interval, address: t.address, curve: t.curve !== null }, 'ticker started');
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
      pub.publish(t.channel, { tick: n, time: Date.now() }).catch((err: Error) => log.error({ err: err.message }, 'tick not queued'));
      if (t.count > 0 && n >= t.count) stop();
    }, t.interval);
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  },
};
