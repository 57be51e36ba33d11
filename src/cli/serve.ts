/** `tidings serve`: run a node in the roles its settings give. */
import type { Argv, CommandModule } from 'yargs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { SETTINGS, envName, flagName } from '../config/settings.js';
import { ConfigError, redactConfig } from '../config/resolve.js';
import { createLogger } from '../log.js';
import { TidingsNode } from '../node/tidings-node.js';
import { loadConfig } from './load-config.js';
import { EXIT_LOOP_DIED } from '../runtime/loop-guard.js';
import { zapHandler } from '../zmq/zap.js';

function defaultText(v: unknown): string {
  if (v === null) return 'none';
  if (Array.isArray(v)) return v.length ? v.join(',') : 'empty';
  return String(v);
}

export function addSettingOptions<T>(y: Argv<T>): Argv<T> {
  let out = y.option('config', { type: 'string', describe: 'JSON config file with setting names as keys (env TIDINGS_CONFIG)' });
  for (const spec of SETTINGS) {
    out = out.option(flagName(spec.name), {
      type: spec.type === 'bool' ? 'boolean' : 'string',
      ...(spec.alias ? { alias: spec.alias } : {}),
      describe: `${spec.describe} [env ${envName(spec.name)}] [default: ${defaultText(spec.default)}]`,
    });
  }
  return out;
}

export const serveCommand: CommandModule = {
  command: 'serve',
  describe: 'Run a Tidings node (director, forwarder and/or edge workers)',
  builder: (y) => addSettingOptions(y),
  handler: async (argv) => {
    let config;
    try {
      config = loadConfig(argv as Record<string, unknown>, process.env);
    } catch (err) {
      if (err instanceof ConfigError) {
        process.stderr.write(`tidings: ${err.message}\n`);
        process.exit(2);
      }
      throw err;
    }
    const log = createLogger(config.log_level);
    log.debug({ config: redactConfig(config) }, 'configuration');
    const here = dirname(fileURLToPath(import.meta.url));
    let stopping = false;
    const shutdown = (signal: string, code = 0): void => {
      if (stopping) return;
      stopping = true;
      log.info({ signal }, 'shutting down');
      // Bounded: a stop that hangs must not keep a broken node alive.
      setTimeout(() => process.exit(code || 1), 10_000).unref();
      node.stop().then(
        () => process.exit(code),
        (err) => {
          log.error({ err }, 'shutdown failed');
          process.exit(1);
        },
      );
    };
    // Without its ZAP handler no CURVE client is admitted any more: end like a dead loop.
    zapHandler.onDeath = () => {
      log.fatal('node exiting: the ZAP handler died');
      shutdown('loop died', EXIT_LOOP_DIED);
    };
    const node: TidingsNode = new TidingsNode({
      config,
      log,
      workerScript: join(here, 'edge-worker.js'),
      // A director or forwarder loop died, or a director lost its lease: stop (edges lose the director,
      // so readiness goes down) and exit 3, so the supervisor starts it again (a fenced director as a standby).
      onFatal: (reason) => {
        log.fatal({ reason }, 'node exiting: a serving loop died or the director lease was lost');
        shutdown(reason, EXIT_LOOP_DIED);
      },
    });
    process.on('SIGTERM', () => shutdown('SIGTERM'));
    process.on('SIGINT', () => shutdown('SIGINT'));
    try {
      await node.start();
    } catch (err) {
      log.fatal({ err }, 'start-up failed');
      await node.stop().catch(() => undefined);
      process.exit(1);
    }
  },
};
