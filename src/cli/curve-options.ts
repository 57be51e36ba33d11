/**
 * CURVE options of the worker commands (`publish`, `ticker`): the worker's
 * secret key and the public key of the node it publishes to, inline or from
 * key files, also from the environment (TIDINGS_CURVE_SECRET_KEY[_FILE],
 * TIDINGS_CURVE_SERVER_KEY[_FILE]).
 */
import type { Argv } from 'yargs';
import { readFileSync } from 'node:fs';
import { isCurveKey, parseKeyText } from '../zmq/keys.js';
import { UsageError } from './usage.js';

export interface CurveArgs {
  'curve-secret-key'?: string;
  'curve-secret-key-file'?: string;
  'curve-server-key'?: string;
  'curve-server-key-file'?: string;
}

const env = (name: string): string | undefined => process.env[name] || undefined;

export function addCurveOptions<T>(y: Argv<T>): Argv<T & CurveArgs> {
  return y
    .option('curve-secret-key', { type: 'string', default: env('TIDINGS_CURVE_SECRET_KEY'), describe: "This worker's CURVE secret key, Z85 [env TIDINGS_CURVE_SECRET_KEY]" })
    .option('curve-secret-key-file', { type: 'string', default: env('TIDINGS_CURVE_SECRET_KEY_FILE'), describe: 'File holding it (tidings keygen output) [env TIDINGS_CURVE_SECRET_KEY_FILE]' })
    .option('curve-server-key', { type: 'string', default: env('TIDINGS_CURVE_SERVER_KEY'), describe: "Public key of the node published to (several directors: their shared curve_director_key) [env TIDINGS_CURVE_SERVER_KEY]" })
    .option('curve-server-key-file', { type: 'string', default: env('TIDINGS_CURVE_SERVER_KEY_FILE'), describe: 'File holding it (a .pub file) [env TIDINGS_CURVE_SERVER_KEY_FILE]' }) as Argv<T & CurveArgs>;
}

/** Where an option's value came from: its flag, or the environment variable that gave its default. */
function sourceOf(flag: string): string {
  const given = process.argv.some((a) => a === `--${flag}` || a.startsWith(`--${flag}=`));
  return given ? `--${flag}` : `${envNameOf(flag)} (--${flag})`;
}

const envNameOf = (flag: string): string => `TIDINGS_${flag.replace(/-/g, '_').toUpperCase()}`;

function keyFrom(inline: string | undefined, file: string | undefined, what: 'secret' | 'public', flag: string): string | null {
  if (inline !== undefined && file !== undefined) throw new Error(`give --${flag} or --${flag}-file, not both`);
  if (inline !== undefined) {
    if (!isCurveKey(inline)) throw new Error(`${sourceOf(flag)} must be a Z85 CURVE key (40 characters)`);
    return inline;
  }
  if (file === undefined) return null;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`${sourceOf(`${flag}-file`)}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const keys = parseKeyText(text);
  const found = (what === 'secret' ? keys.secretKeys : keys.publicKeys).concat(keys.bareKeys);
  if (found.length !== 1) throw new Error(`${sourceOf(`${flag}-file`)}: ${file} must hold one ${what} key, found ${found.length}`);
  return found[0]!;
}

/** The Publisher's `curve` option from the arguments; null when none is given. Throws on a half-given pair. */
export function curveFromArgs(a: CurveArgs): { secretKey: string; serverKey: string } | null {
  const secretKey = keyFrom(a['curve-secret-key'], a['curve-secret-key-file'], 'secret', 'curve-secret-key');
  const serverKey = keyFrom(a['curve-server-key'], a['curve-server-key-file'], 'public', 'curve-server-key');
  if ((secretKey === null) !== (serverKey === null)) throw new Error('CURVE needs both a secret key and the server key');
  return secretKey === null ? null : { secretKey, serverKey: serverKey! };
}

/** The worker's CURVE keys from the options, or null; a bad or half-given pair is a usage error. */
export function curveOption(a: CurveArgs): ReturnType<typeof curveFromArgs> {
  try {
    return curveFromArgs(a);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}
