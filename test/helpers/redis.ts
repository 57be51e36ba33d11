/**
 * A real redis-server (Debian's) for tests: its own free port and temp dir,
 * stopped by PID. `restart()` kills it (SIGKILL) and starts it again on the
 * same port and dir, so an append-only file is read back.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createConnection } from 'node:net';
import { freePort } from './ports.js';
import { sleep } from './processes.js';

export interface RedisServer {
  port: number;
  url: string;
  dir: string;
  readonly pid: number;
  /** kill -9 and start again on the same port and dir. */
  restart(): Promise<void>;
  /** kill -9, no restart. */
  kill9(): Promise<void>;
  stop(): Promise<void>;
  output(): string;
}

async function pingable(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = createConnection({ host: '127.0.0.1', port }, () => s.write('PING\r\n'));
      s.once('data', (d) => {
        s.destroy();
        resolve(d.toString().startsWith('+PONG'));
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await sleep(20);
  }
  throw new Error(`redis-server on ${port} did not answer PING within ${timeoutMs} ms`);
}

/** redis-sentinel watching `master` (as name `name`), quick to act: down after 500 ms. */
export async function startSentinel(masterPort: number, name: string): Promise<RedisServer> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'tidings-sentinel-'));
  const conf = join(dir, 'sentinel.conf');
  writeFileSync(
    conf,
    [`port ${port}`, 'bind 127.0.0.1', `dir ${dir}`, `sentinel monitor ${name} 127.0.0.1 ${masterPort} 1`, `sentinel down-after-milliseconds ${name} 500`, `sentinel failover-timeout ${name} 5000`, `sentinel parallel-syncs ${name} 1`, ''].join('\n'),
  );
  let out = '';
  const child = spawn('redis-sentinel', [conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.on('data', (d) => (out = (out + d).slice(-5000)));
  child.stderr.on('data', (d) => (out = (out + d).slice(-5000)));
  process.once('exit', () => child.kill('SIGKILL'));
  await pingable(port, 10_000);
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    dir,
    pid: child.pid!,
    restart: async () => {
      throw new Error('not for sentinels');
    },
    kill9: async () => {
      child.kill('SIGKILL');
    },
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
    output: () => out,
  };
}

export async function startRedis(opts: { appendonly?: boolean; appendfsync?: 'always' | 'everysec'; args?: string[] } = {}): Promise<RedisServer> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'tidings-redis-'));
  let out = '';
  let child: ChildProcess;
  const launch = async (): Promise<void> => {
    child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', opts.appendonly ? 'yes' : 'no', '--appendfsync', opts.appendfsync ?? 'always', '--dir', dir, '--loglevel', 'warning', ...(opts.args ?? [])], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout!.on('data', (d) => (out = (out + d).slice(-5000)));
    child.stderr!.on('data', (d) => (out = (out + d).slice(-5000)));
    await pingable(port, 10_000);
  };
  const kill = async (signal: NodeJS.Signals): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill(signal);
    await exited;
  };
  await launch();
  process.once('exit', () => child.kill('SIGKILL'));
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    dir,
    get pid() {
      return child.pid!;
    },
    restart: async () => {
      await kill('SIGKILL');
      await launch();
    },
    kill9: () => kill('SIGKILL'),
    stop: async () => {
      await kill('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    },
    output: () => out,
  };
}
