/**
 * One node of a cluster: the director and/or forwarder in this process, and
 * `workers` edge processes (node:cluster) sharing the server port. A node
 * without edges but with a director serves the HTTP API from this process.
 * Crashed edge workers are restarted with a growing delay, which starts
 * again from the shortest once a worker has run for worker_restart_reset.
 * Workers get their configuration (secrets included) over the IPC channel,
 * never through their environment or command line, which other local users
 * can read in /proc.
 */
import cluster, { type Worker } from 'node:cluster';
import { hostname, tmpdir } from 'node:os';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { AggregatorRegistry, Registry, collectDefaultMetrics } from 'prom-client';
import type { Config } from '../config/resolve.js';
import { Director } from '../director/director.js';
import { Forwarder } from '../forwarder/forwarder.js';
import { EdgeServer } from '../edge/edge-server.js';
import { installEdgeFeatures } from '../edge/features.js';
import { installDirectorFeatures, type DirectorFeatures } from '../director/features.js';
import type { SiblingOptions } from '../edge/siblings.js';

export interface NodeOptions {
  config: Config;
  log: Logger;
  /** Path of the edge worker entry script. */
  workerScript: string;
  /** A loop of the director or forwarder died, or the director lost its lease: the caller ends the process (readiness is already down). */
  onFatal?: (reason: string) => void;
}

/** Restart delay of an edge worker after `attempt` quick deaths in a row: 100 ms doubling, at most 5 s. */
export function restartDelayMs(attempt: number): number {
  return Math.min(100 * 2 ** Math.min(attempt, 6), 5000);
}

type WorkerMetrics = Awaited<ReturnType<Registry['getMetricsAsJSON']>>;

/** Messages between the node process and its edge workers. */
export type IpcMessage =
  | { type: 'tidings:config?' } // a worker's first message, once it listens
  | { type: 'tidings:config'; config: Config; edgeId: string; siblings: SiblingOptions | null } // the answer: settings and secrets over IPC
  | { type: 'tidings:ready' }
  | { type: 'tidings:node-metrics?'; id: number } // worker asks for the whole node's text
  | { type: 'tidings:node-metrics'; id: number; text: string }
  | { type: 'tidings:worker-metrics?'; id: number } // node asks a worker for its metrics JSON
  | { type: 'tidings:worker-metrics'; id: number; json: unknown };

export class TidingsNode {
  readonly nodeId: string;
  readonly registry = new Registry();
  private director: Director | null = null;
  private directorFeatures: DirectorFeatures | null = null;
  private forwarder: Forwarder | null = null;
  private api: EdgeServer | null = null;
  private workers = new Map<number, Worker>();
  /** Per worker slot: quick deaths in a row, reset by a run of worker_restart_reset. */
  private readonly restarts = new Map<number, number>();
  private stopping = false;
  /** Directory (mode 0700) of the edge workers' sibling sockets, with several workers. */
  private siblingDir: string | null = null;

  constructor(private readonly opts: NodeOptions) {
    this.nodeId = opts.config.node_id ?? `${hostname()}-${process.pid}`;
    collectDefaultMetrics({ register: this.registry, prefix: 'tidings_node_', eventLoopMonitoringPrecision: 100 });
  }

  async start(): Promise<void> {
    const { config, log } = this.opts;
    log.info({ node: this.nodeId, director: config.director_enabled, forwarder: config.forwarder_enabled, edge: config.edge_enabled, workers: config.workers }, 'starting node');
    if (config.director_enabled) {
      this.director = new Director(config, log.child({ component: 'director' }), this.registry);
      this.directorFeatures = installDirectorFeatures(this.director, this.registry);
      this.director.events.onFenced.push((reason) => this.opts.onFatal?.(`director fenced: ${reason}`));
      this.director.onFatal = (reason) => this.opts.onFatal?.(reason);
      await this.director.start();
    }
    if (config.forwarder_enabled) {
      this.forwarder = new Forwarder(config, log.child({ component: 'forwarder' }), this.registry);
      this.forwarder.onFatal = (reason) => this.opts.onFatal?.(reason);
      await this.forwarder.start();
    }
    if (config.edge_enabled) {
      await this.startWorkers();
    } else {
      // A node without edges (a director, or a forwarder relaying for other hosts' edges) still serves the
      // HTTP API, health and metrics, so operators see and check every node the same way.
      this.api = new EdgeServer({
        config,
        log: log.child({ component: 'api' }),
        registry: this.registry,
        edgeId: `${this.nodeId}/api`,
        websocket: false,
        metricsText: () => this.metricsText(),
        onFatal: (reason) => this.opts.onFatal?.(reason),
      });
      // The compat and debug routes are served here too (no websocket features start).
      installEdgeFeatures(this.api, config, log.child({ component: 'api' }));
      await this.api.start();
    }
    log.info({ node: this.nodeId }, 'node ready');
  }

  /** Prometheus text for this process and every edge worker. */
  async metricsText(): Promise<string> {
    const own = await this.registry.getMetricsAsJSON();
    if (this.workers.size === 0) return this.registry.metrics();
    const perWorker = await Promise.all([...this.workers.values()].map((w) => this.askWorkerMetrics(w)));
    const merged = AggregatorRegistry.aggregate([own, ...perWorker.filter((x): x is WorkerMetrics => x !== null)]);
    return merged.metrics();
  }

  private metricsSeq = 1;
  private metricsWaiters = new Map<number, (json: unknown) => void>();

  /** A worker's registry as JSON, or null when it does not answer within 2 s. */
  private askWorkerMetrics(worker: Worker): Promise<WorkerMetrics | null> {
    return new Promise((resolve) => {
      const id = this.metricsSeq++;
      const timer = setTimeout(() => {
        this.metricsWaiters.delete(id);
        resolve(null);
      }, 2000);
      this.metricsWaiters.set(id, (json) => {
        clearTimeout(timer);
        resolve(json as WorkerMetrics);
      });
      worker.send({ type: 'tidings:worker-metrics?', id } satisfies IpcMessage);
    });
  }

  private async startWorkers(): Promise<void> {
    const execArgv = workerExecArgv(this.opts.config, process.execArgv);
    // One edge process: nothing to balance, so it accepts its connections itself. Round-robin
    // (node's default on Linux) would accept each in this process and pass it over IPC, which
    // cost ~15 % of a connect's CPU and grew this process' young generation under a connect storm.
    if (this.opts.config.workers === 1) cluster.schedulingPolicy = cluster.SCHED_NONE;
    // No arguments: the node's command line may hold secrets (--token-secret ...), and /proc shows it.
    cluster.setupPrimary({ exec: this.opts.workerScript, execArgv, args: [], silent: false });
    // Workers pass each other requests of sessions they do not hold (SockJS) over unix sockets here.
    if (this.opts.config.workers > 1) {
      removeStaleSiblingDirs();
      this.siblingDir = mkdtempSync(join(tmpdir(), `tidings-edges-${process.pid}-`));
    }
    const ready: Promise<void>[] = [];
    for (let i = 0; i < this.opts.config.workers; i++) ready.push(this.fork(i));
    await Promise.all(ready);
  }

  /**
   * Fork the worker of slot `index`; resolves once it is ready. A worker that
   * dies is forked again after restartDelayMs, also when it dies while
   * starting, except on the node's own start (which then fails).
   */
  private fork(index: number, restart = false): Promise<void> {
    const { config, log } = this.opts;
    const edgeId = `${this.nodeId}/e${index}`;
    const siblings: SiblingOptions | null = this.siblingDir ? { index, count: config.workers, dir: this.siblingDir } : null;
    // Taken before the fork: a process preempted right after it must not seem to have lived shorter.
    const startedAt = Date.now();
    const worker = cluster.fork(workerEnvironment(process.env));
    this.workers.set(index, worker);
    return new Promise<void>((resolve, reject) => {
      let up = false;
      worker.on('message', (msg: IpcMessage) => {
        if (msg.type === 'tidings:config?') {
          worker.send({ type: 'tidings:config', config, edgeId, siblings } satisfies IpcMessage);
        } else if (msg.type === 'tidings:ready') {
          up = true;
          resolve();
        } else if (msg.type === 'tidings:worker-metrics') {
          const w = this.metricsWaiters.get(msg.id);
          this.metricsWaiters.delete(msg.id);
          w?.(msg.json);
        } else if (msg.type === 'tidings:node-metrics?') {
          void this.metricsText().then((text) => worker.send({ type: 'tidings:node-metrics', id: msg.id, text } satisfies IpcMessage));
        }
      });
      worker.on('exit', (code, signal) => {
        this.workers.delete(index);
        if (!up) reject(new Error(`edge worker ${edgeId} exited during start (code ${code}, signal ${signal})`));
        if ((!up && !restart) || this.stopping) return;
        // A worker that ran long enough was healthy: its next restart is quick again.
        const ranMs = Date.now() - startedAt;
        const attempt = ranMs >= config.worker_restart_reset * 1000 ? 0 : (this.restarts.get(index) ?? 0);
        this.restarts.set(index, attempt + 1);
        const delay = restartDelayMs(attempt);
        log.error({ edge: edgeId, code, signal, ranMs, restartInMs: delay }, 'edge worker died; restarting');
        setTimeout(() => {
          // Its own exit schedules the next attempt; this only notes that the start failed.
          if (!this.stopping) this.fork(index, true).catch((err: Error) => log.warn({ err: err.message }, 'edge worker restart failed'));
        }, delay);
      });
    });
  }

  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    const exits = [...this.workers.values()].map(
      (w) =>
        new Promise<void>((resolve) => {
          const timer = setTimeout(() => {
            w.process.kill('SIGKILL');
            resolve();
          }, 5000);
          w.once('exit', () => {
            clearTimeout(timer);
            resolve();
          });
          w.process.kill('SIGTERM');
        }),
    );
    await Promise.all(exits);
    if (this.siblingDir) rmSync(this.siblingDir, { recursive: true, force: true });
    await this.api?.stop();
    await this.forwarder?.stop();
    this.directorFeatures?.stop();
    await this.director?.stop();
    this.opts.log.info('node stopped');
  }
}

/**
 * Node's flags for an edge worker: the main process' own, less its
 * young-generation cap (main-process.ts), which is not the workers': theirs
 * is `worker_semi_space_mb`, or V8's default.
 */
export function workerExecArgv(config: Pick<Config, 'worker_semi_space_mb'>, parent: readonly string[]): string[] {
  const args = parent.filter((a) => !a.startsWith('--max-semi-space-size'));
  if (config.worker_semi_space_mb > 0) args.push(`--max-semi-space-size=${config.worker_semi_space_mb}`);
  return args;
}

/**
 * The environment of an edge worker: the node's, without any TIDINGS_*
 * variable (settings, secrets among them, reach the worker over IPC).
 * cluster.fork merges what it is given over process.env; undefined removes.
 */
export function workerEnvironment(env: NodeJS.ProcessEnv): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const key of Object.keys(env)) if (key.startsWith('TIDINGS_')) out[key] = undefined;
  return out;
}

/** Sibling socket directories left by nodes that were killed (kill -9 skips stop()). */
function removeStaleSiblingDirs(): void {
  let names: string[] = [];
  try {
    names = readdirSync(tmpdir());
  } catch {
    return;
  }
  for (const name of names) {
    const m = /^tidings-edges-(\d+)-/.exec(name);
    if (!m) continue;
    try {
      process.kill(Number(m[1]), 0);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ESRCH') rmSync(join(tmpdir(), name), { recursive: true, force: true });
    }
  }
}
