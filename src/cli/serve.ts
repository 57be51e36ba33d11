/** `tidings serve`: run a node in the roles its settings give. */
import type { CommandModule } from 'yargs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { redactConfig, type Config } from '../config/resolve.js';
import { loadConfig } from './load-config.js';
import { addSettingOptions } from './setting-options.js';
import { orUsage } from './usage.js';

export { addSettingOptions };

/** What a person trying the server needs, printed once in development mode. */
function developmentBanner(c: Config): string {
  const scheme = c.tls_cert_file ? 'https' : 'http';
  const host = c.server_host === '0.0.0.0' || c.server_host === '::' ? '127.0.0.1' : c.server_host;
  const base = `${scheme}://${host}:${c.server_port}${c.server_base_url}`;
  const lines = [
    '',
    'Tidings is running in development mode: the secrets below are published in the repository, never use them in production.',
    ...(c.demo && c.edge_enabled ? [`  demo chat      ${base}/`] : []),
    `  admin page     ${base}/admin          admin secret: ${c.admin_secret ?? '(none)'}`,
    `  HTTP API       curl -H 'Authorization: Bearer ${c.api_keys[0] ?? ''}' -d '{"channel": "demo.lobby", "data": {"text": "hi"}}' ${base}/api/publish`,
    `  client tokens  npx tidings token --development --user alice --subscribe 'demo.*'      (token secret: ${c.token_secret ?? '(none)'})`,
    `  publish        npx tidings publish --channel demo.lobby --data '{"text": "hello"}'`,
    '',
  ];
  return lines.join('\n') + '\n';
}

export const serveCommand: CommandModule = {
  command: 'serve',
  describe: 'Run a Tidings node (director, forwarder and/or edge workers)',
  builder: (y) => addSettingOptions(y),
  handler: async (argv) => {
    const config = orUsage(() => loadConfig(argv as Record<string, unknown>, process.env));
    // Loaded once the settings are good: a mistake is reported without loading the whole node.
    const [{ createLogger }, { TidingsNode }, { zapHandler }, { EXIT_LOOP_DIED }] = await Promise.all([
      import('../log.js'),
      import('../node/tidings-node.js'),
      import('../zmq/zap.js'),
      import('../runtime/loop-guard.js'),
    ]);
    const log = createLogger(config.log_level, {}, config.log_format);
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
        (err: unknown) => {
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
    const node: InstanceType<typeof TidingsNode> = new TidingsNode({
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
    if (config.development) process.stderr.write(developmentBanner(config));
  },
};
