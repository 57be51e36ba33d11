/** Turns parsed flags, the environment and an optional JSON config file into settings (all of them: the frozen Config). */
import { readFileSync } from 'node:fs';
import { ConfigError, resolveConfig, resolveSettings, type Config, type Origin } from '../config/resolve.js';
import { SETTINGS, envName, flagName } from '../config/settings.js';

function flagsOf(argv: Record<string, unknown>, names: readonly string[]): Record<string, unknown> {
  const flags: Record<string, unknown> = {};
  for (const name of names) {
    const v = argv[flagName(name)];
    if (v !== undefined) flags[name] = v;
  }
  return flags;
}

/** The JSON config file named by --config or TIDINGS_CONFIG, or {}. */
function readConfigFile(argv: Record<string, unknown>, env: NodeJS.ProcessEnv): Record<string, unknown> {
  const flag = argv['config'];
  if (flag !== undefined && (typeof flag !== 'string' || flag === '')) throw new ConfigError('config', 'invalid setting config (--config): must be a file path');
  const path = (flag as string | undefined) ?? env['TIDINGS_CONFIG'];
  if (!path) return {};
  const where = flag !== undefined ? '--config' : 'TIDINGS_CONFIG';
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError('config', `invalid setting config (${where}): cannot read ${path}: ${(err as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new ConfigError('config', `invalid setting config (${where}): ${path} is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ConfigError('config', `invalid setting config (${where}): ${path} must hold a JSON object`);
  }
  return parsed as Record<string, unknown>;
}

export function loadConfig(argv: Record<string, unknown>, env: NodeJS.ProcessEnv): Config {
  const names = SETTINGS.map((s) => s.name);
  const config = resolveConfig({ flags: flagsOf(argv, names), env, file: readConfigFile(argv, env), readFile: (f) => readFileSync(f, 'utf8') });
  for (const key of ['tls_cert_file', 'tls_key_file'] as const) {
    const f = config[key];
    if (f === null) continue;
    try {
      readFileSync(f);
    } catch (err) {
      throw new ConfigError(key, `invalid setting ${key}: cannot read ${f}: ${(err as Error).message}`);
    }
  }
  return config;
}

/** A few settings, for commands other than serve; same sources, precedence and errors. */
export function loadSettings(names: readonly string[], argv: Record<string, unknown>, env: NodeJS.ProcessEnv): { values: Record<string, unknown>; origins: Record<string, Origin> } {
  return resolveSettings(names, { flags: flagsOf(argv, names), env, file: readConfigFile(argv, env) });
}

/**
 * publisher_address or command_address as the worker commands take them: one
 * address, or every director's of a failover group, comma-separated; each is
 * checked as the setting is.
 */
export function workerAddresses(name: 'publisher_address' | 'command_address', argv: Record<string, unknown>, env: NodeJS.ProcessEnv): string[] {
  const flag = flagName(name);
  const fromFlag = argv[flag] !== undefined;
  const raw = fromFlag ? argv[flag] : env[envName(name)];
  if (typeof raw !== 'string' || !raw.includes(',')) return [loadSettings([name], argv, env).values[name] as string];
  return raw.split(',').map((part) => {
    const one = part.trim();
    return loadSettings([name], fromFlag ? { [flag]: one } : {}, fromFlag ? {} : { [envName(name)]: one }).values[name] as string;
  });
}
