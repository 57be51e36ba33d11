/**
 * `tidings keygen`: make a CURVE key pair and print it in Z85 as ZeroMQ's
 * curve_keygen does, or write named key files into a directory (what
 * docker-compose.yml's one-shot `keygen` service does): NAME.key holds the
 * pair (mode 0600), NAME.pub the public key. Existing files are kept, so the
 * service can run on every `docker compose up`.
 */
import type { CommandModule } from 'yargs';
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatKeyPair, formatPublicKey } from '../zmq/keys.js';
import { UsageError } from './usage.js';

interface KeygenArgs {
  out?: string;
  names: string[];
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export const keygenCommand: CommandModule<object, KeygenArgs> = {
  command: 'keygen [names..]',
  describe: 'Make CURVE key pairs (Z85) for nodes and workers: print one, or write NAME.key and NAME.pub files with --out',
  builder: (y) =>
    y
      .positional('names', { type: 'string', array: true, default: [], describe: 'Key pairs to write with --out (e.g. director node1 worker)' })
      .option('out', { type: 'string', describe: 'Directory to write NAME.key (secret, mode 0600) and NAME.pub into; existing files are kept' })
      .check((a) => {
        const names = a.names as string[];
        if (a.out === undefined && names.length > 0) throw new UsageError('names need --out DIR');
        if (a.out !== undefined && names.length === 0) throw new UsageError('--out needs at least one name');
        for (const n of names) if (!NAME_RE.test(n)) throw new UsageError(`bad key name ${JSON.stringify(n)}: letters, digits, _ . -`);
        return true;
      }),
  handler: async (a) => {
    const { curveKeyPair } = await import('zeromq');
    if (a.out === undefined) {
      process.stdout.write(formatKeyPair(curveKeyPair()));
      return;
    }
    mkdirSync(a.out, { recursive: true });
    for (const name of a.names) {
      const secretFile = join(a.out, `${name}.key`);
      const publicFile = join(a.out, `${name}.pub`);
      if (existsSync(secretFile) && existsSync(publicFile)) {
        process.stdout.write(`kept ${secretFile}\n`);
        continue;
      }
      const pair = curveKeyPair();
      writeFileSync(secretFile, formatKeyPair(pair), { mode: 0o600 });
      chmodSync(secretFile, 0o600);
      writeFileSync(publicFile, formatPublicKey(pair.publicKey), { mode: 0o644 });
      process.stdout.write(`wrote ${secretFile} and ${publicFile}\n`);
    }
  },
};
