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

/**
 * A key pair whose public (or secret) key begins with "-", as one in 85 does:
 * such a key given as `--flag KEY` reads as short flags unless the CLI joins
 * it to its flag, so the clusters below always use one. Bounded: the chance
 * that 5 000 tries find none is below 1e-25.
 */
export function dashKeyPair(which: 'publicKey' | 'secretKey'): KeyPair {
  for (let i = 0; i < 5000; i++) {
    const pair = curveKeyPair();
    if (pair[which].startsWith('-')) return pair;
  }
  throw new Error(`no ${which} starting with "-" in 5000 key pairs`);
}

export function curveCluster(nodeCount: number): CurveCluster {
  const dir = mkdtempSync(join(tmpdir(), 'tidings-curve-'));
  const director = dashKeyPair('publicKey');
  const nodes = Array.from({ length: nodeCount }, () => curveKeyPair());
  const worker = dashKeyPair('secretKey');
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
    // The spaced form, with keys that begin with '-' (the director's public key, the worker's secret key).
    workerArgs: (server) => ['--curve-secret-key', worker.secretKey, '--curve-server-key', server.publicKey],
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
