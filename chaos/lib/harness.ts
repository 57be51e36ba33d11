/**
 * Runs one chaos scenario from start to end: a fresh cluster, SDK
 * subscribers on every node, a steady acknowledged publisher, a warm-up, the
 * fault, publishing on for a while, a drain of late deliveries, the figures.
 */
import type { ClientOptions } from '../../src/client/index.js';
import { analyse, type Figures } from './analysis.js';
import { ChaosCluster, type ClusterSpec, type Topology } from './cluster.js';
import { SteadyPublisher } from './publisher.js';
import type { FaultParams, Scenario } from './scenario.js';
import { SubscriberFleet } from './subscribers.js';

export interface RunOptions {
  /** Acknowledged publishes a second. */
  rate: number;
  /** Seconds of steady publishing before the fault. */
  warmupSeconds: number;
  /** Seconds of publishing after the fault is over. */
  afterSeconds: number;
  /** Seconds without a new delivery after which the drain stops waiting for missing messages. */
  drainQuietSeconds: number;
  subscribersPerNode: number;
  /** Seconds a publish waits for its acknowledgement. */
  ackTimeout: number;
  /** Cluster shape and settings; a scenario's own come first, these override them. */
  nodes: number;
  workers: number;
  settings: Record<string, string>;
  params: FaultParams;
  /** SDK options over its defaults (retry delays, timeouts). */
  sdk: Partial<ClientOptions>;
  /** Directory for every process' full log, or null to keep only their tails. */
  logDir: string | null;
  progress: (line: string) => void;
}

export interface ScenarioResult {
  scenario: string;
  title: string;
  figures: Figures;
  /** How long the fault itself lasted (inject() start to end), ms. */
  faultMs: number;
  settings: Record<string, string>;
  notes: string[];
}

const CHANNEL = 'chaos';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function runScenario(scenario: Scenario, opts: RunOptions): Promise<ScenarioResult> {
  const spec: ClusterSpec = {
    nodes: scenario.cluster?.nodes ?? opts.nodes,
    workers: scenario.cluster?.workers ?? opts.workers,
    settings: { ...scenario.cluster?.settings, ...opts.settings },
  };
  const notes: string[] = [];
  const note = (text: string): void => {
    notes.push(text);
    opts.progress(`  ${scenario.name}: ${text}`);
  };
  const began = Date.now();
  const cluster: Topology = scenario.topology ? await scenario.topology(spec, opts.logDir) : await ChaosCluster.start(spec, opts.logDir);
  note(`cluster ready in ${Date.now() - began} ms`);
  const fleet = new SubscriberFleet({ nodes: cluster.nodes, perNode: opts.subscribersPerNode, channel: CHANNEL, tokenSecret: cluster.tokenSecret, sdk: opts.sdk });
  const publisher = new SteadyPublisher({ commandAddress: cluster.commandAddress, channel: CHANNEL, rate: opts.rate, ackTimeout: opts.ackTimeout });
  try {
    await fleet.start();
    note(`${fleet.records.length} subscribers on ${new Set(fleet.records.map((r) => r.edge)).size} edges`);
    publisher.start();
    await sleep(opts.warmupSeconds * 1000);

    let faultAt = 0;
    const injectStart = Date.now();
    await scenario.inject({
      cluster,
      params: opts.params,
      markFault: () => (faultAt = Date.now()),
      note,
    });
    const faultEnd = Date.now();
    if (faultAt === 0) faultAt = injectStart;
    note(`fault over after ${faultEnd - faultAt} ms`);
    await sleep(opts.afterSeconds * 1000);
    await publisher.stop();
    const drained = Date.now();
    await drain(fleet, publisher, opts.drainQuietSeconds * 1000);
    note(`drained in ${Date.now() - drained} ms`);
    return {
      scenario: scenario.name,
      title: scenario.title,
      figures: analyse(publisher.records, fleet.records, faultAt),
      faultMs: faultEnd - faultAt,
      settings: spec.settings,
      notes,
    };
  } finally {
    fleet.stop();
    await publisher.stop();
    const stopping = Date.now();
    await cluster.stop();
    note(`cluster stopped in ${Date.now() - stopping} ms`);
  }
}

/** Wait until every subscriber has every acknowledged message, or until deliveries stop for quietMs. */
async function drain(fleet: SubscriberFleet, publisher: SteadyPublisher, quietMs: number): Promise<void> {
  const acked = publisher.records.filter((p) => p.offset !== undefined).map((p) => p.seq);
  const complete = (): boolean =>
    fleet.records.every((r) => {
      const got = new Set(r.deliveries.map((d) => d.seq));
      return acked.every((s) => got.has(s));
    });
  let last = -1;
  let lastChange = Date.now();
  while (Date.now() - lastChange < quietMs) {
    if (complete()) return;
    const total = fleet.records.reduce((a, r) => a + r.deliveries.length, 0);
    if (total !== last) [last, lastChange] = [total, Date.now()];
    await sleep(100);
  }
}
