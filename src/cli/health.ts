/**
 * `tidings health`: the container health check. Reads the same settings as
 * `serve` (usually its environment) and asks the node it runs beside:
 *   tidings health             GET /healthz of the node's HTTP server (alive)
 *   tidings health --ready     GET /readyz (director reachable, subscriber connected)
 *   tidings health --publisher a director subscribes through publisher_address
 *                              (for a worker that serves no HTTP, such as the ticker)
 * Exit 0 and one line when healthy, 1 and one line with the reason otherwise.
 */
import type { CommandModule } from 'yargs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { loadSettings } from './load-config.js';
import { addSettingOptions } from './setting-options.js';
import { addCurveOptions, curveOption, type CurveArgs } from './curve-options.js';
import { boolOption, orUsage, secondsOption } from './usage.js';

type HealthArgs = Record<string, unknown> & CurveArgs;
const SETTING_NAMES = ['server_host', 'server_port', 'server_base_url', 'tls_cert_file', 'publisher_address'];

function get(url: URL, timeoutMs: number): Promise<{ status: number; body: string }> {
  const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    // The node's own certificate may name a public host, not the loopback address asked here.
    const req = request(url, { method: 'GET', timeout: timeoutMs, rejectUnauthorized: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d.length + body.length < 4096 ? d : ''));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs / 1000} s`)));
    req.on('error', reject);
    req.end();
  });
}

export const healthCommand: CommandModule<object, HealthArgs> = {
  command: 'health',
  describe: 'Check the node (or, with --publisher, the path to a director) this container runs: exit 0 when healthy',
  builder: (y) =>
    addCurveOptions(addSettingOptions(y, SETTING_NAMES))
      .option('ready', { describe: 'Check /readyz (the director answers, the subscriber socket is connected) instead of /healthz [boolean]' })
      .option('publisher', { describe: 'Check that a director subscribes through publisher_address (for workers without HTTP) [boolean]' })
      .option('timeout', { describe: 'Seconds to wait for an answer [default: 3]', requiresArg: true })
      .group(['ready', 'publisher', 'timeout'], 'Check:'),
  handler: async (a) => {
    const o = orUsage(() => ({
      ready: boolOption('ready', a['ready']),
      publisher: boolOption('publisher', a['publisher']),
      timeoutMs: (a['timeout'] === undefined ? 3 : secondsOption('timeout', a['timeout'], 60)) * 1000,
      settings: loadSettings(SETTING_NAMES, a, process.env).values,
      curve: a['publisher'] === undefined ? null : curveOption(a),
    }));
    const s = o.settings;
    if (o.publisher) {
      const address = s['publisher_address'] as string;
      // Loaded only here: the HTTP checks start faster without ZeroMQ.
      const [{ Publisher }, { pino }] = await Promise.all([import('../publisher/publisher.js'), import('pino')]);
      const pub = new Publisher({ address, curve: o.curve, log: pino({ level: 'silent' }) });
      pub.start();
      try {
        await pub.waitReady(o.timeoutMs, true, Math.min(1500, o.timeoutMs));
        process.stdout.write(`healthy: a director subscribes through ${address}\n`);
        await pub.close();
        process.exit(0);
      } catch (err) {
        process.stdout.write(`unhealthy: ${(err as Error).message}\n`);
        await pub.close();
        process.exit(1);
      }
    }
    const host = String(s['server_host']);
    const target = host === '0.0.0.0' || host === '' ? '127.0.0.1' : host === '::' ? '[::1]' : host.includes(':') ? `[${host}]` : host;
    const url = new URL(`${s['tls_cert_file'] ? 'https' : 'http'}://${target}:${s['server_port'] as number}${s['server_base_url'] as string}${o.ready ? '/readyz' : '/healthz'}`);
    try {
      const r = await get(url, o.timeoutMs);
      const ok = r.status === 200;
      process.stdout.write(`${ok ? 'healthy' : 'unhealthy'}: ${url.href} answered ${r.status} ${r.body.trim().slice(0, 200)}\n`);
      process.exit(ok ? 0 : 1);
    } catch (err) {
      process.stdout.write(`unhealthy: ${url.href}: ${(err as Error).message}\n`);
      process.exit(1);
    }
  },
};
