/**
 * CURVE keys for test clusters: one pair per node and one for a backend
 * worker, and each node's settings. The director reads its keys from files
 * (as docker-compose.yml does), forwarder nodes get theirs inline, so both
 * ways are run.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { curveKeyPair } from 'zeromq';
import { formatKeyPair, formatPublicKey } from '../../src/zmq/keys.js';

export interface KeyPair {
  publicKey: string;
  secretKey: string;
}

export interface CurveCluster {
  director: KeyPair;
  nodes: KeyPair[];
  worker: KeyPair;
  /** Settings by node name, for startCluster's perNode. */
  env: Record<string, Record<string, string>>;
  /** CLI arguments of a worker publishing to `server`'s publisher address. */
  workerArgs(server: KeyPair): string[];
  cleanup(): void;
}

export function curveCluster(nodeCount: number): CurveCluster {
  const dir = mkdtempSync(join(tmpdir(), 'tidings-curve-'));
  const director = curveKeyPair();
  const nodes = Array.from({ length: nodeCount }, () => curveKeyPair());
  const worker = curveKeyPair();
  writeFileSync(join(dir, 'director.key'), formatKeyPair(director), { mode: 0o600 });
  nodes.forEach((n, i) => writeFileSync(join(dir, `node${i + 1}.pub`), formatPublicKey(n.publicKey)));
  writeFileSync(join(dir, 'worker.pub'), formatPublicKey(worker.publicKey));
  const env: Record<string, Record<string, string>> = {
    director: {
      TIDINGS_CURVE_SECRET_KEY_FILE: join(dir, 'director.key'),
      TIDINGS_CURVE_NODE_KEYS_FILE: nodes.map((_, i) => join(dir, `node${i + 1}.pub`)).join(','),
      TIDINGS_CURVE_WORKER_KEYS_FILE: join(dir, 'worker.pub'),
    },
  };
  nodes.forEach((n, i) => {
    env[`node${i + 1}`] = {
      TIDINGS_CURVE_SECRET_KEY: n.secretKey,
      TIDINGS_CURVE_DIRECTOR_KEY: director.publicKey,
      TIDINGS_CURVE_WORKER_KEYS: worker.publicKey,
    };
  });
  return {
    director,
    nodes,
    worker,
    env,
    // The `=` form: a Z85 key may begin with '-', which yargs would read as flags.
    workerArgs: (server) => [`--curve-secret-key=${worker.secretKey}`, `--curve-server-key=${server.publicKey}`],
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
