/**
 * Every chaos scenario, in the order `npm run chaos` runs them. A new
 * scenario is a module in this folder added to this list.
 */
import type { Scenario } from '../lib/scenario.js';
import { edgeKill } from './edge-kill.js';
import { nodeKill } from './node-kill.js';
import { directorPause } from './director-pause.js';
import { directorRestart } from './director-restart.js';
import { nodeTerm } from './node-term.js';
import { directorFailover, directorFailoverPause } from './director-failover.js';

export const SCENARIOS: readonly Scenario[] = [edgeKill, nodeKill, directorPause, directorRestart, nodeTerm, directorFailover, directorFailoverPause] as readonly Scenario[];

export function scenarioByName(name: string): Scenario | undefined {
  return SCENARIOS.find((s) => s.name === name);
}
