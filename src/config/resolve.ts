/**
 * Resolves the settings from flags, environment and config file, with
 * precedence flag > env > file > default, validates them once and freezes.
 * Pure: takes plain objects, throws ConfigError naming the setting.
 */
import { SETTINGS, type SettingSpec, envName, flagName } from './settings.js';
import { DEVELOPMENT_SECRETS, PUBLISHED_SECRETS } from './development.js';
import { resolveCurve, type CurveConfig } from './curve.js';

export type { CurveConfig } from './curve.js';

export class ConfigError extends Error {
  readonly setting: string;
  constructor(setting: string, message: string) {
    super(message);
    this.name = 'ConfigError';
    this.setting = setting;
  }
}

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export interface Config {
  readonly server_host: string;
  readonly server_port: number;
  readonly server_base_url: string;
  readonly tls_cert_file: string | null;
  readonly tls_key_file: string | null;
  readonly director_enabled: boolean;
  readonly forwarder_enabled: boolean;
  readonly edge_enabled: boolean;
  readonly workers: number;
  readonly worker_semi_space_mb: number;
  readonly subscriber_address: string;
  readonly publisher_address: string;
  readonly command_address: string;
  /** One address per director, in the same order in all three lists. */
  readonly director_subscriber_address: readonly string[];
  readonly director_publisher_address: readonly string[];
  readonly director_command_address: readonly string[];
  readonly curve_secret_key: string | null;
  readonly curve_secret_key_file: string | null;
  readonly curve_director_key: string | null;
  readonly curve_director_key_file: string | null;
  readonly curve_node_keys: readonly string[];
  readonly curve_node_keys_file: readonly string[];
  readonly curve_worker_keys: readonly string[];
  readonly curve_worker_keys_file: readonly string[];
  readonly zmq_insecure: boolean;
  readonly node_id: string | null;
  readonly secret: string | null;
  readonly admin_secret: string | null;
  readonly token_secret: string | null;
  readonly api_keys: readonly string[];
  readonly allow_posting_from: readonly string[];
  readonly allow_anonymous: boolean;
  readonly anonymous_channels: readonly string[];
  readonly demo: boolean;
  readonly log_level: LogLevel;
  readonly log_format: 'auto' | 'json' | 'pretty';
  readonly development: boolean;
  readonly ping_interval: number;
  readonly idle_timeout: number;
  readonly connect_timeout: number;
  readonly max_message_size: number;
  readonly client_send_buffer: number;
  readonly client_max_inflight: number;
  readonly client_history_bytes: number;
  readonly client_history_window: number;
  readonly write_coalesce_ms: number;
  readonly max_subscriptions: number;
  readonly max_connections: number;
  readonly overload_lag_ms: number;
  readonly command_timeout: number;
  readonly zmq_high_water_mark: number;
  readonly forwarder_minor_gc_mb: number;
  readonly zmq_block_timeout: number;
  readonly history_size: number;
  readonly history_ttl: number;
  readonly history_channel_bytes: number;
  readonly history_total_bytes: number;
  readonly channel_idle_timeout: number;
  readonly state_engine: 'memory' | 'redis';
  readonly redis_url: string;
  readonly redis_prefix: string;
  readonly redis_replicas_ack: number;
  readonly director_lease: number;
  readonly presence_ttl: number;
  readonly http_headers_timeout: number;
  readonly token_max_lifetime: number;
  readonly worker_restart_reset: number;
  readonly channelstream_signed_value: 'path' | 'any';
  readonly allow_cors: readonly string[];
  readonly reattach_window: number;
  readonly catchup_max_bytes: number;
  readonly metrics: boolean;
  readonly omnibus_authenticator: 'off' | 'noop' | 'user' | 'http';
  readonly omnibus_base_url: string;
  readonly django_secret_key: string | null;
  readonly sethpusher_enabled: boolean;
  readonly sethpusher_base_url: string;
  readonly native_sockjs: boolean;
  readonly sockjs_heartbeat: number;
  readonly sockjs_disconnect_delay: number;
  readonly auth_url: string | null;
  readonly auth_native: boolean;
  readonly auth_timeout: number;
  readonly auth_cache_ttl: number;
  readonly auth_cache_size: number;
  readonly wamp: boolean;
  readonly wamp_path: string;
  readonly wamp_realm: string;
  readonly wamp_call_timeout: number;
  readonly wamp_max_calls: number;
  /**
   * CURVE keys resolved from the curve_* settings and their files (null: no
   * CURVE). Derived once here, so edge workers get them with the config.
   */
  readonly curve: CurveConfig | null;
}

export interface Sources {
  /** Parsed flags, keyed by setting name (undefined when not given). */
  flags?: Record<string, unknown>;
  env?: Record<string, string | undefined>;
  /** Parsed config file object, keyed by setting name. */
  file?: Record<string, unknown>;
  /** Reads the key files that curve_*_file settings name (none given: such a setting is an error). */
  readFile?: (path: string) => string;
}

const LEVELS = new Set(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);
const ADDRESS_RE = /^(tcp:\/\/(\*|[A-Za-z0-9.\-_]+|\[[0-9a-fA-F:]+\]):\d{1,5}|ipc:\/\/.+|inproc:\/\/.+)$/;

/** Where a setting's value came from. */
export type Origin = 'flag' | 'env' | 'file' | 'default' | 'development';

function describeSource(name: string, origin: Origin): string {
  if (origin === 'flag') return `--${flagName(name)}`;
  if (origin === 'env') return envName(name);
  if (origin === 'file') return `config file key "${name}"`;
  if (origin === 'development') return 'development value';
  return 'default';
}

function coerce(spec: SettingSpec, raw: unknown, origin: Origin): unknown {
  const where = describeSource(spec.name, origin);
  const fail = (why: string): never => {
    throw new ConfigError(spec.name, `invalid setting ${spec.name} (${where}): ${why}, got ${JSON.stringify(raw)}`);
  };
  if (raw === null) {
    if (spec.default === null) return null;
    fail('must not be null');
  }
  switch (spec.type) {
    case 'string':
      if (typeof raw !== 'string') fail('must be a string');
      if (spec.choices && !spec.choices.includes(raw as string)) fail(`must be one of ${spec.choices.join(', ')}`);
      return raw;
    case 'int':
    case 'duration': {
      let n: number;
      if (typeof raw === 'number') n = raw;
      else if (typeof raw === 'string' && raw.trim() !== '' && !Number.isNaN(Number(raw))) n = Number(raw);
      else return fail(spec.type === 'int' ? 'must be an integer' : 'must be a number of seconds');
      if (spec.type === 'int' && !Number.isInteger(n)) fail('must be an integer');
      if (!Number.isFinite(n)) fail('must be finite');
      if (spec.min !== undefined && n < spec.min) fail(`must be at least ${spec.min}`);
      if (spec.max !== undefined && n > spec.max) fail(`must be at most ${spec.max}`);
      return n;
    }
    case 'bool':
      if (typeof raw === 'boolean') return raw;
      if (typeof raw === 'string') {
        const v = raw.trim().toLowerCase();
        if (['1', 'true', 'yes', 'on'].includes(v)) return true;
        if (['0', 'false', 'no', 'off', ''].includes(v)) return false;
      }
      return fail('must be true or false');
    case 'list': {
      let items: unknown[];
      if (Array.isArray(raw)) items = raw;
      else if (typeof raw === 'string') items = raw.split(',');
      else return fail('must be a comma-separated list');
      const out: string[] = [];
      for (const item of items) {
        if (typeof item !== 'string') fail('must be a list of strings');
        const t = (item as string).trim();
        if (t) out.push(t);
      }
      return Object.freeze(out);
    }
    case 'address':
      if (typeof raw !== 'string' || !ADDRESS_RE.test(raw)) fail('must be a ZeroMQ address like tcp://host:port or ipc:///path');
      return raw;
    case 'addresses': {
      const items = Array.isArray(raw) ? raw : typeof raw === 'string' ? raw.split(',') : fail('must be a comma-separated list of ZeroMQ addresses');
      const out: string[] = [];
      for (const item of items as unknown[]) {
        const t = typeof item === 'string' ? item.trim() : '';
        if (!ADDRESS_RE.test(t)) fail('must be a comma-separated list of ZeroMQ addresses like tcp://host:port');
        out.push(t);
      }
      return Object.freeze(out);
    }
    case 'level':
      if (typeof raw !== 'string' || !LEVELS.has(raw)) fail('must be one of fatal, error, warn, info, debug, trace, silent');
      return raw;
    case 'choice':
      if (typeof raw !== 'string' || !spec.choices!.includes(raw)) fail(`must be one of ${spec.choices!.join(', ')}`);
      return raw;
  }
}

/**
 * Resolve some settings with the same precedence and checks as the whole
 * configuration (for commands that need only a few, such as `tidings token`).
 * Returns the values and where each came from. Throws ConfigError.
 */
export function resolveSettings(names: readonly string[], sources: Sources): { values: Record<string, unknown>; origins: Record<string, Origin> } {
  const flags = sources.flags ?? {};
  const env = sources.env ?? {};
  const file = sources.file ?? {};
  for (const key of Object.keys(file)) {
    if (!SETTINGS.some((x) => x.name === key)) {
      throw new ConfigError(key, `invalid setting ${key} (config file key "${key}"): unknown setting`);
    }
  }
  const values: Record<string, unknown> = {};
  const origins: Record<string, Origin> = {};
  for (const name of names) {
    const spec = SETTINGS.find((x) => x.name === name);
    if (!spec) throw new Error(`no setting ${name}`);
    let raw: unknown;
    let origin: Origin;
    const envValue = env[envName(spec.name)];
    if (flags[spec.name] !== undefined) {
      raw = flags[spec.name];
      origin = 'flag';
    } else if (envValue !== undefined && envValue !== '') {
      // An empty variable counts as unset, as compose files often leave them.
      raw = envValue;
      origin = 'env';
    } else if (file[spec.name] !== undefined) {
      raw = file[spec.name];
      origin = 'file';
    } else {
      values[spec.name] = spec.default;
      origins[spec.name] = 'default';
      continue;
    }
    values[spec.name] = coerce(spec, raw, origin);
    origins[spec.name] = origin;
  }
  if (names.includes('development')) applyDevelopment(values, origins);
  return { values, origins };
}

/**
 * Development mode fills unset secrets with the published development values;
 * outside it, a published value is refused wherever it came from.
 */
function applyDevelopment(v: Record<string, unknown>, origins: Record<string, Origin>): void {
  const secretNames = ['token_secret', 'api_keys', 'admin_secret'] as const;
  if (v['development'] === true) {
    for (const name of secretNames) {
      if (!(name in v) || origins[name] !== 'default') continue;
      v[name] = DEVELOPMENT_SECRETS[name];
      origins[name] = 'development';
    }
    return;
  }
  for (const spec of SETTINGS) {
    if (!spec.secret || !(spec.name in v)) continue;
    const value = v[spec.name];
    const list = Array.isArray(value) ? (value as string[]) : typeof value === 'string' ? [value] : [];
    if (list.some((x) => PUBLISHED_SECRETS.has(x))) {
      throw new ConfigError(
        spec.name,
        `invalid setting ${spec.name} (${describeSource(spec.name, origins[spec.name]!)}): this is a development value published in the repository; set your own secret, or turn on development (--development, TIDINGS_DEVELOPMENT=true) for a local trial`,
      );
    }
  }
}

/** Resolve, validate and freeze the configuration. Throws ConfigError. */
export function resolveConfig(sources: Sources): Config {
  const { values, origins } = resolveSettings(
    SETTINGS.map((s) => s.name),
    sources,
  );
  const cfg = values as unknown as Config;
  const where = (name: string): string => describeSource(name, origins[name] ?? 'default');
  checkCombination(cfg, where);
  try {
    values['curve'] = resolveCurve(cfg, sources.readFile);
  } catch (err) {
    // The CURVE checks name a setting by its variable; say where its value really came from.
    if (!(err instanceof ConfigError) || (origins[err.setting] ?? 'default') === 'default') throw err;
    throw new ConfigError(err.setting, err.message.replace(`(${envName(err.setting)})`, `(${where(err.setting)})`));
  }
  return Object.freeze(cfg);
}

/** Checks of some settings on their own that a subset resolution also needs (`tidings token`). */
export function checkTokenSecret(secret: string | null, where: string): void {
  if (secret !== null && secret.length < 32) {
    throw new ConfigError('token_secret', `invalid setting token_secret (${where}): must be at least 32 characters for HS256`);
  }
}

function checkCombination(c: Config, where: (name: string) => string): void {
  const fail = (name: string, why: string): never => {
    throw new ConfigError(name, `invalid setting ${name} (${where(name)}): ${why}`);
  };
  if (c.forwarder_enabled) {
    for (const k of ['director_subscriber_address', 'director_publisher_address', 'director_command_address'] as const) {
      if (c[k].length === 0) throw new ConfigError(k, `invalid setting ${k} (set --${flagName(k)} or ${envName(k)}): required when forwarder_enabled is true (${where('forwarder_enabled')})`);
    }
    const n = c.director_subscriber_address.length;
    for (const k of ['director_publisher_address', 'director_command_address'] as const) {
      if (c[k].length !== n) throw new ConfigError(k, `invalid setting ${k} (${where(k)}): must list as many directors (${c[k].length}) as director_subscriber_address (${n})`);
    }
  }
  if (c.state_engine !== 'memory' && c.state_engine !== 'redis') {
    throw new ConfigError('state_engine', `invalid setting state_engine (${where('state_engine')}): must be memory or redis, got ${JSON.stringify(c.state_engine)}`);
  }
  if (c.state_engine === 'redis' && !/^(rediss?|redis\+sentinel):\/\/[^\s]+$/.test(c.redis_url)) {
    throw new ConfigError('redis_url', `invalid setting redis_url (${where('redis_url')}): must be a redis://, rediss:// or redis+sentinel:// URL`);
  }
  if (!/^[A-Za-z0-9_.:\-]{1,64}$/.test(c.redis_prefix)) {
    throw new ConfigError('redis_prefix', `invalid setting redis_prefix (${where('redis_prefix')}): 1-64 characters of A-Z a-z 0-9 _ . : -`);
  }
  if (!c.director_enabled && !c.forwarder_enabled && !c.edge_enabled) {
    fail('edge_enabled', 'no role enabled (director, forwarder and edge are all false)');
  }
  checkTokenSecret(c.token_secret, where('token_secret'));
  if (c.idle_timeout <= c.ping_interval) fail('idle_timeout', `must be greater than ping_interval (${c.ping_interval})`);
  if ((c.tls_cert_file === null) !== (c.tls_key_file === null)) {
    const given = c.tls_cert_file === null ? 'tls_key_file' : 'tls_cert_file';
    const missing = c.tls_cert_file === null ? 'tls_cert_file' : 'tls_key_file';
    throw new ConfigError(missing, `invalid setting ${missing}: tls_cert_file and tls_key_file go together (${given} is set by ${where(given)})`);
  }
  if (!/^\/[A-Za-z0-9_\-.~/]*$/.test(c.wamp_path) || c.wamp_path === '/ws') fail('wamp_path', 'must be a path starting with / other than /ws');
  if (!/^([^\s.#]+\.)*([^\s.#]+)$/.test(c.wamp_realm)) fail('wamp_realm', 'must be a WAMP URI such as realm1');
  if (c.server_base_url !== '' && (!c.server_base_url.startsWith('/') || c.server_base_url.endsWith('/'))) {
    fail('server_base_url', 'must start with / and not end with /');
  }
  checkAuthentication(c, where);
}

const AUTHENTICATORS = ['off', 'noop', 'user', 'http'];
const ENDPOINT_PATH = /^\/[A-Za-z0-9._~\-/]*[A-Za-z0-9._~\-]$/;

/** The compatibility endpoints and their authenticators: each must be able to prove who a client is. */
function checkAuthentication(c: Config, where: (name: string) => string): void {
  const fail = (k: string, why: string): never => {
    throw new ConfigError(k, `invalid setting ${k} (${where(k)}): ${why}`);
  };
  if (!AUTHENTICATORS.includes(c.omnibus_authenticator)) fail('omnibus_authenticator', `must be one of ${AUTHENTICATORS.join(', ')}, got ${JSON.stringify(c.omnibus_authenticator)}`);
  for (const k of ['omnibus_base_url', 'sethpusher_base_url'] as const) {
    if (!ENDPOINT_PATH.test(c[k]) || c[k].includes('//')) fail(k, `must be a path like /ec (starts with /, does not end with /), got ${JSON.stringify(c[k])}`);
  }
  if (c.omnibus_authenticator !== 'off' && c.sethpusher_enabled && c.omnibus_base_url === c.sethpusher_base_url) {
    fail('sethpusher_base_url', 'must differ from omnibus_base_url');
  }
  if (c.omnibus_authenticator === 'noop' && !c.allow_anonymous) fail('omnibus_authenticator', 'noop lets everyone in: development only, and only with allow_anonymous true');
  if (c.omnibus_authenticator === 'user' && !c.django_secret_key) fail('django_secret_key', 'required when omnibus_authenticator is user');
  if ((c.omnibus_authenticator === 'http' || c.auth_native) && !c.auth_url) fail('auth_url', `required when ${c.auth_native ? 'auth_native is true' : 'omnibus_authenticator is http'}`);
  if (c.auth_url !== null) {
    let u: URL | null = null;
    try {
      u = new URL(c.auth_url);
    } catch {
      u = null;
    }
    if (!u || (u.protocol !== 'http:' && u.protocol !== 'https:')) fail('auth_url', `must be an http:// or https:// URL, got ${JSON.stringify(c.auth_url)}`);
  }
}

/** The config with secrets masked, for logs and debug views. */
export function redactConfig(c: Config): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const spec of SETTINGS) {
    const v = (c as unknown as Record<string, unknown>)[spec.name];
    out[spec.name] = spec.secret && v !== null && !(Array.isArray(v) && v.length === 0) ? '[redacted]' : v;
  }
  return out;
}
