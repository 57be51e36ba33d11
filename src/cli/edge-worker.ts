/**
 * Entry of an edge worker process, forked by the node (node:cluster). Asks the
 * node for its resolved config over IPC (secrets never travel through the
 * environment or the command line, which /proc shows to other users), runs
 * one EdgeServer, reports ready, and answers the node's requests for metrics.
 * A serving loop that dies ends the process with exit code 3; the node
 * restarts it.
 */
import { Registry, collectDefaultMetrics } from 'prom-client';
import type { Config } from '../config/resolve.js';
import { createLogger } from '../log.js';
import { EdgeServer } from '../edge/edge-server.js';
import { installEdgeFeatures } from '../edge/features.js';
import type { IpcMessage } from '../node/tidings-node.js';
import type { SiblingOptions } from '../edge/siblings.js';
import { EXIT_LOOP_DIED } from '../runtime/loop-guard.js';
import { zapHandler } from '../zmq/zap.js';

const send = (m: IpcMessage): void => {
  process.send?.(m);
};

function receiveConfig(): Promise<{ config: Config; edgeId: string; siblings: SiblingOptions | undefined }> {
  return new Promise((resolve) => {
    const onMessage = (msg: IpcMessage): void => {
      if (msg.type !== 'tidings:config') return;
      process.off('message', onMessage);
      resolve({ config: Object.freeze(msg.config), edgeId: msg.edgeId, siblings: msg.siblings ?? undefined });
    };
    process.on('message', onMessage);
    send({ type: 'tidings:config?' });
  });
}

async function main(): Promise<void> {
  const { config, edgeId, siblings } = await receiveConfig();
  const log = createLogger(config.log_level, { edge: edgeId }, config.log_format).child({ component: 'edge' });
  const registry = new Registry();
  registry.setDefaultLabels({ edge: edgeId });
  collectDefaultMetrics({ register: registry, prefix: 'tidings_edge_', eventLoopMonitoringPrecision: 100 });

  const pending = new Map<number, (text: string) => void>();
  let seq = 1;
  let stopping = false;
  const stop = (code: number): void => {
    if (stopping) return;
    stopping = true;
    // Bounded: a stop that hangs must not keep a broken worker alive.
    setTimeout(() => process.exit(code || 1), 5000).unref();
    edge.stop().then(
      () => process.exit(code),
      () => process.exit(1),
    );
  };

  const edge: EdgeServer = new EdgeServer({
    config,
    log,
    registry,
    edgeId,
    websocket: true,
    siblings,
    metricsText: () =>
      new Promise<string>((resolve) => {
        const id = seq++;
        const timer = setTimeout(() => {
          pending.delete(id);
          void registry.metrics().then(resolve);
        }, 3000);
        pending.set(id, (text) => {
          clearTimeout(timer);
          resolve(text);
        });
        send({ type: 'tidings:node-metrics?', id });
      }),
    // Readiness is already down (the EdgeServer answers 503); stop and let the node restart us.
    onFatal: (reason) => {
      log.fatal({ reason }, 'edge worker exiting: a serving loop died');
      stop(EXIT_LOOP_DIED);
    },
  });
  installEdgeFeatures(edge, config, log);
  // Without its ZAP handler no CURVE client is admitted any more: end like a dead loop.
  zapHandler.onDeath = () => stop(EXIT_LOOP_DIED);

  process.on('message', (msg: IpcMessage) => {
    if (msg.type === 'tidings:worker-metrics?') {
      void registry.getMetricsAsJSON().then((json) => send({ type: 'tidings:worker-metrics', id: msg.id, json }));
    } else if (msg.type === 'tidings:node-metrics') {
      pending.get(msg.id)?.(msg.text);
      pending.delete(msg.id);
    }
  });
  process.on('SIGTERM', () => stop(0));
  process.on('SIGINT', () => undefined); // the node process decides when workers stop
  process.on('disconnect', () => stop(0));
  // Nothing a client sends can reject a promise unhandled (connection.ts); if anything else does, say what.
  process.on('unhandledRejection', (err) => {
    log.fatal({ err }, 'unhandled rejection in an edge worker');
    process.exit(1);
  });

  try {
    await edge.start();
  } catch (err) {
    log.fatal({ err }, 'edge start-up failed');
    process.exit(1);
  }
  send({ type: 'tidings:ready' });
}

void main();
