/**
 * What a chaos scenario is: a fault injected into a running cluster while a
 * steady publisher and SDK subscribers on every node record what happens.
 * Scenarios are modules under chaos/scenarios/, listed in its index.ts; one
 * that needs another cluster shape (several directors, Redis, ...) provides
 * `topology` and starts it itself.
 */
import type { ClusterSpec, Topology } from './cluster.js';

/** Parameters every scenario may read; set from the command line. */
export interface FaultParams {
  /** Seconds a stopped process stays stopped (SIGSTOP ... SIGCONT). */
  pauseSeconds: number;
  /** Seconds between a kill and the restart, for scenarios that restart what they killed. */
  restartDelaySeconds: number;
}

export interface ScenarioContext<T extends Topology = Topology> {
  readonly cluster: T;
  readonly params: FaultParams;
  /**
   * Marks the moment of the fault (send the signal right after). Called by
   * the scenario; if it is not, the fault counts from the start of inject().
   */
  markFault(): void;
  /** A line for the run's progress output. */
  note(text: string): void;
}

export interface Scenario<T extends Topology = Topology> {
  /** Id on the command line: --scenarios edge-kill,director-pause. */
  readonly name: string;
  /** One line for the table. */
  readonly title: string;
  /** What happens and what the figures should show, for --list and docs/reliability.md. */
  readonly description: string;
  /** Cluster shape and settings over the run's (the command line's --set wins over these). */
  readonly cluster?: Partial<ClusterSpec>;
  /** Start a cluster of another shape; the default is ChaosCluster (director + forwarder nodes). */
  topology?(spec: ClusterSpec, logDir: string | null): Promise<T>;
  /** Inject the fault; resolves when the fault is over (a paused process continued, a killed one restarted). */
  inject(ctx: ScenarioContext<T>): Promise<void>;
}
