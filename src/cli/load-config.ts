/** Turns parsed flags, the environment and an optional JSON config file into the frozen Config. */
import { readFileSync } from 'node:fs';
import { ConfigError, resolveConfig, type Config } from '../config/resolve.js';
import { SETTINGS, flagName } from '../config/settings.js';

export function loadConfig(argv: Record<string, unknown>, env: NodeJS.ProcessEnv): Config {
  const flags: Record<string, unknown> = {};
  for (const spec of SETTINGS) {
    const v = argv[flagName(spec.name)];
    if (v !== undefined) flags[spec.name] = v;
  }
  let file: Record<string, unknown> = {};
  const path = (argv['config'] as string | undefined) ?? env['TIDINGS_CONFIG'];
  if (path) {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      throw new ConfigError('config', `invalid setting config: cannot read ${path}: ${(err as Error).message}`);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      throw new ConfigError('config', `invalid setting config: ${path} is not valid JSON: ${(err as Error).message}`);
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw new ConfigError('config', `invalid setting config: ${path} must hold a JSON object`);
    }
    file = parsed as Record<string, unknown>;
  }
  const config = resolveConfig({ flags, env, file, readFile: (f) => readFileSync(f, 'utf8') });
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
