/**
 * Runs docker-compose.yml's services as local processes, since this machine
 * has no Docker engine: each service gets its own network namespace (ip netns,
 * a veth into a bridge namespace, service names in /etc/netns/<ns>/hosts), or,
 * where namespaces are unavailable, its own 127.x address with the service
 * names rewritten to those addresses.
 */
import { readFileSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { parse } from 'yaml';

export interface ComposeService {
  name: string;
  /** Arguments to the `tidings` program (the image's entrypoint). */
  command: string[];
  environment: Record<string, string>;
  /** Named volumes: `source` volume mounted at `target` in the container. */
  volumes: Array<{ source: string; target: string }>;
  /** Published ports, as written ("4242:4242"). */
  ports: string[];
}

/** `${VAR:-default}` and `${VAR}` interpolation, as docker compose does it. */
export function interpolate(value: string, env: Record<string, string | undefined>): string {
  return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}/g, (_m, name: string, _d, def: string | undefined) => {
    const v = env[name];
    return v !== undefined && v !== '' ? v : (def ?? '');
  });
}

export function readCompose(path: string, env: Record<string, string | undefined> = {}): ComposeService[] {
  const doc = parse(readFileSync(path, 'utf8'), { merge: true }) as {
    services: Record<string, { command?: string[]; environment?: Record<string, string>; volumes?: string[]; ports?: string[] }>;
  };
  return Object.entries(doc.services).map(([name, s]) => ({
    name,
    command: s.command ?? ['serve'],
    environment: Object.fromEntries(Object.entries(s.environment ?? {}).map(([k, v]) => [k, interpolate(String(v), env)])),
    volumes: (s.volumes ?? []).map((v) => {
      const [source, target] = v.split(':') as [string, string];
      return { source, target };
    }),
    ports: (s.ports ?? []).map(String),
  }));
}

/**
 * A service as a local process sees it: each named volume is a directory of
 * `dirs`, and paths under its mount point, in the command and the
 * environment, point into that directory instead.
 */
export function withVolumes(service: ComposeService, dirs: Map<string, string>): ComposeService {
  const map = (value: string): string => {
    let out = value;
    for (const { source, target } of service.volumes) {
      const dir = dirs.get(source);
      if (dir === undefined) throw new Error(`no directory for volume ${source}`);
      const escaped = target.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      out = out.replace(new RegExp(`(^|,)${escaped}(?=/|,|$)`, 'g'), (_m, before: string) => `${before}${dir}`);
    }
    return out;
  };
  return {
    ...service,
    command: service.command.map(map),
    environment: Object.fromEntries(Object.entries(service.environment).map(([k, v]) => [k, map(v)])),
  };
}

export interface Topology {
  readonly kind: 'netns' | 'loopback';
  /** The address other hosts use for a service. */
  addressOf(service: string): string;
  /** Start `node <args>` as (or beside) a service's host, with the service's environment rewritten for this topology. */
  spawn(host: string, args: string[], env: Record<string, string>): ChildProcess;
  /** Start another program (e.g. redis-server) on a service's host. */
  spawnProgram(host: string, program: string, args: string[]): ChildProcess;
  teardown(): void;
}

function run(cmd: string[]): void {
  const r = spawnSync(cmd[0]!, cmd.slice(1), { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd.join(' ')} failed: ${r.stderr || r.error?.message}`);
}

/** One namespace per host, joined by a bridge that lives in a namespace of its own. */
export class NetnsTopology implements Topology {
  readonly kind = 'netns' as const;
  private readonly prefix: string;
  private readonly ips = new Map<string, string>();
  private readonly namespaces: string[] = [];

  /** `tag` tells apart several topologies of one test process (names, interfaces and subnet). */
  constructor(hosts: string[], tag = '') {
    this.prefix = `tdg${process.pid % 100000}${tag}`;
    const subnet = tag === '' ? 231 : 232;
    const sw = `${this.prefix}-sw`;
    try {
      run(['ip', 'netns', 'add', sw]);
      this.namespaces.push(sw);
      run(['ip', 'netns', 'exec', sw, 'ip', 'link', 'add', 'br0', 'type', 'bridge']);
      run(['ip', 'netns', 'exec', sw, 'ip', 'link', 'set', 'br0', 'up']);
      hosts.forEach((h, i) => this.ips.set(h, `10.${subnet}.${process.pid % 200}.${i + 2}`));
      const hostsFile = ['127.0.0.1 localhost', ...hosts.map((h) => `${this.ips.get(h)} ${h}`)].join('\n') + '\n';
      hosts.forEach((h, i) => {
        const ns = this.ns(h);
        run(['ip', 'netns', 'add', ns]);
        this.namespaces.push(ns);
        const a = `t${process.pid % 100000}${tag}a${i}`;
        const b = `t${process.pid % 100000}${tag}b${i}`;
        run(['ip', 'link', 'add', a, 'type', 'veth', 'peer', 'name', b]);
        run(['ip', 'link', 'set', a, 'netns', ns]);
        run(['ip', 'link', 'set', b, 'netns', sw]);
        run(['ip', 'netns', 'exec', sw, 'ip', 'link', 'set', b, 'master', 'br0']);
        run(['ip', 'netns', 'exec', sw, 'ip', 'link', 'set', b, 'up']);
        run(['ip', 'netns', 'exec', ns, 'ip', 'addr', 'add', `${this.ips.get(h)}/24`, 'dev', a]);
        run(['ip', 'netns', 'exec', ns, 'ip', 'link', 'set', a, 'up']);
        run(['ip', 'netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up']);
        mkdirSync(`/etc/netns/${ns}`, { recursive: true });
        writeFileSync(`/etc/netns/${ns}/hosts`, hostsFile);
      });
    } catch (err) {
      this.teardown();
      throw err;
    }
  }

  private ns(host: string): string {
    return `${this.prefix}-${host}`;
  }

  addressOf(service: string): string {
    return this.ips.get(service)!;
  }

  spawn(host: string, args: string[], env: Record<string, string>): ChildProcess {
    // Inside its namespace a service keeps its compose environment unchanged.
    return spawn('ip', ['netns', 'exec', this.ns(host), process.execPath, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  }

  spawnProgram(host: string, program: string, args: string[]): ChildProcess {
    return spawn('ip', ['netns', 'exec', this.ns(host), program, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  }

  teardown(): void {
    for (const ns of this.namespaces.splice(0).reverse()) {
      spawnSync('ip', ['netns', 'del', ns]);
      rmSync(`/etc/netns/${ns}`, { recursive: true, force: true });
    }
  }
}

/** Each host on its own 127.0.X.1; names and wildcard/loopback binds rewritten to it. */
export class LoopbackTopology implements Topology {
  readonly kind = 'loopback' as const;
  private readonly ips = new Map<string, string>();

  constructor(hosts: string[], tag = '') {
    hosts.forEach((h, i) => this.ips.set(h, `127.0.${(tag === '' ? 100 : 150) + i}.1`));
  }

  addressOf(service: string): string {
    return this.ips.get(service)!;
  }

  spawn(host: string, args: string[], env: Record<string, string>): ChildProcess {
    const own = this.ips.get(host)!;
    const rewritten: Record<string, string> = {};
    for (const [k, v] of Object.entries(env)) {
      let value = v.replace(/\b(0\.0\.0\.0|127\.0\.0\.1|localhost)\b/g, own).replace(/tcp:\/\/\*:/g, `tcp://${own}:`);
      for (const [name, ip] of this.ips) value = value.replace(new RegExp(`(?<=(tcp|redis)://)${name}(?=:)`, 'g'), ip);
      rewritten[k] = value;
    }
    return spawn(process.execPath, args, { env: rewritten, stdio: ['ignore', 'pipe', 'pipe'] });
  }

  spawnProgram(host: string, program: string, args: string[]): ChildProcess {
    return spawn(program, [...args, '--bind', this.ips.get(host)!], { stdio: ['ignore', 'pipe', 'pipe'] });
  }

  teardown(): void {}
}

/** Environment variable that chooses the compose test's topology (see topologyPlan). */
export const TOPOLOGY_ENV = 'TIDINGS_COMPOSE_TOPOLOGY';

export type TopologyPlan = 'netns' | 'loopback' | 'netns-or-loopback';

/**
 * What the compose test may run on, from TIDINGS_COMPOSE_TOPOLOGY:
 * unset or `netns`: network namespaces, and a machine without them fails the
 * test (CI must prove the real topology, not silently a weaker one);
 * `loopback`: 127.x addresses only; `auto`: namespaces when this machine
 * allows them, else 127.x addresses (said in the test output).
 */
export function topologyPlan(value: string | undefined): TopologyPlan {
  switch (value ?? '') {
    case '':
    case 'netns':
      return 'netns';
    case 'loopback':
      return 'loopback';
    case 'auto':
      return 'netns-or-loopback';
    default:
      throw new Error(`${TOPOLOGY_ENV}=${value}: use netns (the default), loopback or auto`);
  }
}

export interface TopologyFactories {
  netns(hosts: string[], tag?: string): Topology;
  loopback(hosts: string[], tag?: string): Topology;
}

const REAL: TopologyFactories = { netns: (h, tag) => new NetnsTopology(h, tag), loopback: (h, tag) => new LoopbackTopology(h, tag) };

/**
 * The topology the plan allows; without namespaces the default plan fails, naming the way out.
 * `tag` tells apart several topologies of one test process.
 */
export function makeTopology(hosts: string[], value = process.env[TOPOLOGY_ENV], factories: TopologyFactories = REAL, tag = ''): Topology {
  const plan = topologyPlan(value);
  if (plan === 'loopback') return factories.loopback(hosts, tag);
  try {
    return factories.netns(hosts, tag);
  } catch (err) {
    if (plan === 'netns') {
      throw new Error(`network namespaces are not available (${(err as Error).message.trim()}); run as root with iproute2, or set ${TOPOLOGY_ENV}=auto to fall back to 127.x addresses`);
    }
    process.stdout.write(`# compose: no network namespaces (${(err as Error).message.trim()}); ${TOPOLOGY_ENV}=auto falls back to 127.x addresses\n`);
    return factories.loopback(hosts, tag);
  }
}
