/**
 * The CURVE part of the configuration: the node's key pair, the director's
 * public key and the public keys allowed per role, from inline settings or
 * key files, checked once. Also the safe-by-default rule: a node that binds
 * or connects a ZeroMQ address off loopback needs keys, or zmq_insecure.
 */
import { isCurveKey, parseKeyText, publicKeyOf } from '../zmq/keys.js';
import { envName } from './settings.js';
import { ConfigError, type Config } from './resolve.js';

export interface CurveConfig {
  readonly publicKey: string;
  readonly secretKey: string;
  /** Server key of the director's addresses (this node's own public key unless set). */
  readonly directorKey: string;
  /** Allowed on every address: this node's own key and curve_node_keys. */
  readonly nodeKeys: readonly string[];
  /** Allowed on publisher addresses only. */
  readonly workerKeys: readonly string[];
}

type Reader = ((path: string) => string) | undefined;

function fail(setting: string, why: string): never {
  throw new ConfigError(setting, `invalid setting ${setting} (${envName(setting)}): ${why}`);
}

function readKeys(setting: string, path: string, read: Reader): ReturnType<typeof parseKeyText> {
  if (!read) fail(setting, `cannot read ${path} here`);
  let text: string;
  try {
    text = read(path);
  } catch (err) {
    return fail(setting, `cannot read ${path}: ${(err as Error).message}`);
  }
  try {
    return parseKeyText(text);
  } catch (err) {
    return fail(setting, `${path}: ${(err as Error).message}`);
  }
}

function checkKey(setting: string, key: string): string {
  if (!isCurveKey(key)) fail(setting, 'must be a Z85 CURVE key (40 characters, as `tidings keygen` prints)');
  return key;
}

/** One key from an inline setting or its file (not both). */
function oneKey(c: Config, inline: 'curve_secret_key' | 'curve_director_key', read: Reader): string | null {
  const fileSetting = `${inline}_file` as const;
  const value = c[inline];
  const path = c[fileSetting];
  if (value !== null && path !== null) fail(inline, `give ${inline} or ${fileSetting}, not both`);
  if (value !== null) return checkKey(inline, value);
  if (path === null) return null;
  const keys = readKeys(fileSetting, path, read);
  const wanted = inline === 'curve_secret_key' ? keys.secretKeys : keys.publicKeys;
  const found = wanted.length > 0 ? wanted : keys.bareKeys;
  if (found.length !== 1) fail(fileSetting, `${path} must hold exactly one ${inline === 'curve_secret_key' ? 'secret' : 'public'} key, found ${found.length}`);
  return found[0]!;
}

/** Keys from an inline list and its files; a file's public and bare keys count (never a secret key). */
function keyList(c: Config, inline: 'curve_node_keys' | 'curve_worker_keys', read: Reader): string[] {
  const out = c[inline].map((k) => checkKey(inline, k));
  for (const path of c[`${inline}_file`]) {
    const keys = readKeys(`${inline}_file`, path, read);
    if (keys.secretKeys.length > 0) fail(`${inline}_file`, `${path} holds a secret key: give the public key file (.pub) instead`);
    out.push(...keys.publicKeys, ...keys.bareKeys);
  }
  return out;
}

/** tcp://127.x, localhost or [::1], ipc:// and inproc:// stay on this host. */
export function isLoopbackAddress(address: string): boolean {
  if (address.startsWith('ipc://') || address.startsWith('inproc://')) return true;
  const m = /^tcp:\/\/(.+):\d+$/.exec(address);
  if (!m) return false;
  const host = m[1]!;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host) || host === 'localhost' || host === '[::1]';
}

/** The ZeroMQ addresses this node binds or connects, with their setting names. */
export function zmqAddressesOf(c: Config): Array<[setting: string, address: string]> {
  const out: Array<[string, string]> = [
    ['subscriber_address', c.subscriber_address],
    ['publisher_address', c.publisher_address],
    ['command_address', c.command_address],
  ];
  if (c.forwarder_enabled) {
    // Every director of a failover group: one of them off loopback is enough to need keys.
    for (const k of ['director_subscriber_address', 'director_publisher_address', 'director_command_address'] as const) {
      for (const address of c[k]) out.push([k, address]);
    }
  }
  return out;
}

export function resolveCurve(c: Config, read: Reader): CurveConfig | null {
  const secretKey = oneKey(c, 'curve_secret_key', read);
  const directorKey = oneKey(c, 'curve_director_key', read);
  const nodeKeys = keyList(c, 'curve_node_keys', read);
  const workerKeys = keyList(c, 'curve_worker_keys', read);
  if (secretKey === null) {
    for (const [setting, keys] of [['curve_director_key', directorKey === null ? [] : [directorKey]], ['curve_node_keys', nodeKeys], ['curve_worker_keys', workerKeys]] as const) {
      if (keys.length > 0) fail(setting, 'needs curve_secret_key (or curve_secret_key_file): keys without CURVE would protect nothing');
    }
    if (!c.zmq_insecure) {
      const open = zmqAddressesOf(c).find(([, address]) => !isLoopbackAddress(address));
      if (open) {
        fail('curve_secret_key', `required because ${open[0]} ${open[1]} is not a loopback address: set it (\`tidings keygen\` makes a key pair; docs/security.md), or zmq_insecure=true on a network you trust completely`);
      }
    }
    return null;
  }
  const publicKey = publicKeyOf(secretKey);
  const nodes = [...new Set([publicKey, ...nodeKeys])];
  const workers = [...new Set(workerKeys)];
  const both = workers.find((k) => nodes.includes(k));
  if (both) fail('curve_worker_keys', `${both} is also a node key: a key has one role`);
  return Object.freeze({
    publicKey,
    secretKey,
    directorKey: directorKey ?? publicKey,
    nodeKeys: Object.freeze(nodes),
    workerKeys: Object.freeze(workers),
  });
}
