/**
 * A cluster with several directors on the redis engine (one active by lease,
 * the others standing by) and forwarder nodes configured with every
 * director's addresses, on free ports of 127.0.0.1. The caller brings Redis.
 * With `curve` keys, every director runs with the one director key pair (as a
 * failover group must: forwarders and workers check one server key) and each
 * forwarder node with its own pair.
 */
import { freePorts } from './ports.js';
import { serve, forwarderNodeEnv, TOKEN_SECRET, API_KEY, type TidingsProcess } from './processes.js';
import type { CurveCluster } from './curve.js';

export interface HaDirector {
  name: string;
  proc: TidingsProcess;
  http: string;
  subscriber: string;
  publisher: string;
  command: string;
  env: Record<string, string>;
  /** Start it again (after kill -9 or exit) with the same settings. */
  restart(): TidingsProcess;
  /** Times it exited with 3 (fenced: its lease was lost) and was started again, as a supervisor would. */
  fencedExits: number;
}

export interface HaNode {
  proc: TidingsProcess;
  port: number;
  url: string;
  http: string;
}

export interface HaCluster {
  directors: HaDirector[];
  nodes: HaNode[];
  /** The director whose process logged that it sequences, waiting up to timeoutMs. */
  active(timeoutMs?: number): Promise<HaDirector>;
  stop(): Promise<void>;
}

const host = '127.0.0.1';

export async function startHaCluster(redisUrl: string, directorCount: number, nodeCount: number, workers: number, extraEnv: Record<string, string> = {}, curve: CurveCluster | null = null): Promise<HaCluster> {
  if (curve && curve.nodes.length < nodeCount) throw new Error(`curve keys for ${curve.nodes.length} nodes, ${nodeCount} wanted`);
  const directors: HaDirector[] = [];
  const stoppers: Array<() => void> = [];
  for (let i = 0; i < directorCount; i++) {
    const [port, sub, pub, cmd] = await freePorts(4);
    const name = `director${String.fromCharCode(65 + i)}`;
    const env = {
      TIDINGS_SERVER_HOST: host,
      TIDINGS_SERVER_PORT: String(port),
      TIDINGS_EDGE_ENABLED: 'false',
      TIDINGS_SUBSCRIBER_ADDRESS: `tcp://${host}:${sub}`,
      TIDINGS_PUBLISHER_ADDRESS: `tcp://${host}:${pub}`,
      TIDINGS_COMMAND_ADDRESS: `tcp://${host}:${cmd}`,
      TIDINGS_STATE_ENGINE: 'redis',
      TIDINGS_REDIS_URL: redisUrl,
      TIDINGS_TOKEN_SECRET: TOKEN_SECRET,
      TIDINGS_API_KEYS: API_KEY,
      TIDINGS_NODE_ID: name,
      ...(curve ? curve.env['director'] : {}),
      ...extraEnv,
    };
    let stopping = false;
    // A supervisor: a director that lost its lease (exit 3) is started again, as a standby.
    const supervise = (proc: TidingsProcess): TidingsProcess => {
      void proc.wait().then((code) => {
        if (code === 3 && !stopping && d.proc === proc) {
          d.fencedExits++;
          d.proc = supervise(serve(name, env));
        }
      });
      return proc;
    };
    const d: HaDirector = {
      name,
      proc: null as unknown as TidingsProcess,
      http: `http://${host}:${port}`,
      subscriber: env.TIDINGS_SUBSCRIBER_ADDRESS,
      publisher: env.TIDINGS_PUBLISHER_ADDRESS,
      command: env.TIDINGS_COMMAND_ADDRESS,
      env,
      restart: () => (d.proc = supervise(serve(name, env))),
      fencedExits: 0,
    };
    d.proc = supervise(serve(name, env));
    stoppers.push(() => (stopping = true));
    directors.push(d);
    // The first one starts alone, so it is the first active.
    if (i === 0) await d.proc.waitFor(/"msg":"director listening"/, 20000);
  }
  await Promise.all(directors.map((d) => d.proc.waitFor(/"msg":"node ready"/, 20000)));
  const nodes: HaNode[] = [];
  for (let i = 0; i < nodeCount; i++) {
    const [port, sub, pub, cmd] = await freePorts(4);
    nodes.push({
      proc: serve(`node${i + 1}`, {
        ...forwarderNodeEnv(`node${i + 1}`, host, [port, sub, pub, cmd], workers, directors),
        ...(curve ? curve.env[`node${i + 1}`] : {}),
        ...extraEnv,
      }),
      port,
      url: `ws://${host}:${port}/ws`,
      http: `http://${host}:${port}`,
    });
  }
  await Promise.all(nodes.map((n) => n.proc.waitFor(/"msg":"node ready"/, 20000)));
  await Promise.all(nodes.map((n) => n.proc.waitFor(/following the active director/, 10000)));
  return {
    directors,
    nodes,
    active: async (timeoutMs = 10000) => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        // The last director to log "director listening" that is still running sequences.
        const live = directors.filter((d) => d.proc.exitCode === undefined && /"msg":"director listening"/.test(d.proc.text()));
        if (live.length === 1) return live[0]!;
        if (Date.now() > deadline) throw new Error(`no single active director: ${live.map((d) => d.name)}`);
        await new Promise((r) => setTimeout(r, 25));
      }
    },
    stop: async () => {
      for (const s of stoppers) s();
      await Promise.all(nodes.map((n) => n.proc.stop()));
      await Promise.all(directors.map((d) => d.proc.stop()));
    },
  };
}
