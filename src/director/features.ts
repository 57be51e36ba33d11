/**
 * Optional parts of the director, kept out of its core: each registers
 * commands and state on a Director. The list is explicit so what a director
 * answers can be read here.
 */
import type { Registry } from 'prom-client';
import type { Director } from './director.js';
import { ClusterState } from './cluster-state.js';
import { registerStateCommands } from './state-commands.js';
import { registerConnectionCommands } from './connection-commands.js';
import { registerMessageCommands } from './message-commands.js';
import { MirroredPresence, StateMirror } from './state-mirror.js';
import { installWampDirector } from '../wamp/director-feature.js';
import { installDirectorAdmin } from '../admin/director-admin.js';

export interface DirectorFeatures {
  stop(): void;
}

export function installDirectorFeatures(director: Director, registry: Registry): DirectorFeatures {
  const state = new ClusterState(director, director.log.child({ component: 'cluster-state' }), registry);
  registerStateCommands(state);
  registerConnectionCommands(state);
  registerMessageCommands(state);
  if (state.presence instanceof MirroredPresence) {
    // State beside the channels lives in the engine too; a director that takes over loads it first.
    const mirror = new StateMirror(director.engine, state.presence, state.configs, state.log, (err) => director.loops.failed('director-state-mirror', err));
    mirror.watch(director.handlers);
    director.events.onActive.push(async () => {
      const restored = await mirror.restore(Date.now());
      state.log.info(restored, 'cluster state restored from the state engine');
    });
  }
  const wamp = installWampDirector(state, registry); // WAMP dealer: the cluster's procedure registry
  const admin = installDirectorAdmin(state); // the admin page's overview: edge reports, channels, rates
  state.start();
  return {
    stop: () => {
      state.stop();
      wamp.stop();
      admin.stop();
    },
  };
}
