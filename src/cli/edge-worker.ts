/**
 * Entry of an edge worker process, forked by the node (node:cluster). Reads the
 * node's resolved config from the environment, runs one EdgeServer, reports
 * ready, and answers the node's requests for metrics.
 */
import { Registry, collectDefaultMetrics } from 'prom-client';
import type { Config } from '../config/resolve.js';
import { createLogger } from '../log.js';
import { EdgeServer } from '../edge/edge-server.js';
import { installEdgeFeatures } from '../edge/features.js';
import { WORKER_CONFIG_ENV, WORKER_ID_ENV, WORKER_SIBLINGS_ENV, type IpcMessage } from '../node/tidings-node.js';
import type { SiblingOptions } from '../edge/siblings.js';

const config = Object.freeze(JSON.parse(process.env[WORKER_CONFIG_ENV] ?? '{}')) as Config;
const edgeId = process.env[WORKER_ID_ENV] ?? `edge-${process.pid}`;
const siblingsEnv = process.env[WORKER_SIBLINGS_ENV];
const siblings = siblingsEnv ? (JSON.parse(siblingsEnv) as SiblingOptions) : undefined;
const log = createLogger(config.log_level, { edge: edgeId }, config.log_format).child({ component: 'edge' });
const registry = new Registry();
registry.setDefaultLabels({ edge: edgeId });
collectDefaultMetrics({ register: registry, prefix: 'tidings_edge_' });

const pending = new Map<number, (text: string) => void>();
let seq = 1;
const send = (m: IpcMessage): void => {
  process.send?.(m);
};

const edge = new EdgeServer({
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
});
installEdgeFeatures(edge, config, log);

process.on('message', (msg: IpcMessage) => {
  if (msg.type === 'tidings:worker-metrics?') {
    void registry.getMetricsAsJSON().then((json) => send({ type: 'tidings:worker-metrics', id: msg.id, json }));
  } else if (msg.type === 'tidings:node-metrics') {
    pending.get(msg.id)?.(msg.text);
    pending.delete(msg.id);
  }
});

let stopping = false;
const stop = (): void => {
  if (stopping) return;
  stopping = true;
  edge.stop().then(
    () => process.exit(0),
    () => process.exit(1),
  );
};
process.on('SIGTERM', stop);
process.on('SIGINT', () => undefined); // the node process decides when workers stop
process.on('disconnect', stop);

edge.start().then(
  () => send({ type: 'tidings:ready' }),
  (err: unknown) => {
    log.fatal({ err }, 'edge start-up failed');
    process.exit(1);
  },
);
