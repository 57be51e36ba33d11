/**
 * The settings as yargs options, for `serve --help` and for commands that take
 * some of them (publish, token, ticker, health): the same flag, environment
 * variable and config-file key everywhere. Options carry no yargs type: values
 * reach the settings' own coercion as given, so a bad one is reported with
 * the setting's name and where it came from (flag, env or file), never as an
 * "Unknown argument". Help shows the real type.
 */
import type { Argv } from 'yargs';
import { SETTINGS, envName, flagName, type SettingSpec } from '../config/settings.js';

/** Help sections; the first whose pattern matches a setting's name takes it. */
const GROUPS: ReadonlyArray<readonly [string, RegExp]> = [
  ['Roles:', /^(director_enabled|forwarder_enabled|edge_enabled|workers|worker_semi_space_mb|node_id|development)$/],
  ['HTTP and websocket server:', /^(server_|tls_)/],
  ['ZeroMQ addresses:', /_address(es)?$/],
  ['Security:', /secret|api_keys|allow_|anonymous|token|curve|_keys?$|_key_file$/],
  ['WAMP:', /^wamp/],
  ['Channels, history and presence:', /^(history|channel_|presence)/],
  ['Clients and limits:', /^(ping_interval|idle_timeout|connect_timeout|max_|client_|write_|command_|zmq_|request_|header)/],
  ['Logs, metrics and demo:', /^(log_|metrics|demo)/],
];

export function settingGroup(name: string): string {
  return GROUPS.find(([, re]) => re.test(name))?.[0] ?? 'Other settings:';
}

function typeTag(spec: SettingSpec): string {
  switch (spec.type) {
    case 'int':
      return spec.min !== undefined && spec.max !== undefined ? `[integer ${spec.min}-${spec.max}]` : '[integer]';
    case 'duration':
      return spec.min !== undefined && spec.max !== undefined ? `[seconds ${spec.min}-${spec.max}]` : '[seconds]';
    case 'bool':
      return '[boolean]';
    case 'list':
      return '[comma-separated list]';
    case 'address':
      return '[ZeroMQ address]';
    case 'level':
      return '[level]';
    case 'choice':
      return `[${spec.choices!.join('|')}]`;
    default:
      return '[string]';
  }
}

function defaultText(v: unknown): string {
  if (v === null) return 'none';
  if (Array.isArray(v)) return v.length ? v.join(',') : 'empty';
  if (v === '') return 'empty';
  return String(v);
}

/** Add the named settings (every one by default) and --config, grouped for help. */
export function addSettingOptions<T>(y: Argv<T>, names: readonly string[] = SETTINGS.map((s) => s.name)): Argv<T> {
  let out = y.option('config', { describe: 'JSON config file with setting names as keys [env TIDINGS_CONFIG]', requiresArg: true });
  const groups = new Map<string, string[]>();
  for (const spec of SETTINGS) {
    if (!names.includes(spec.name)) continue;
    const flag = flagName(spec.name);
    out = out.option(flag, {
      ...(spec.alias ? { alias: spec.alias } : {}),
      describe: `${spec.describe} ${typeTag(spec)} [env ${envName(spec.name)}] [default: ${defaultText(spec.default)}]`,
    });
    const g = settingGroup(spec.name);
    groups.set(g, [...(groups.get(g) ?? []), flag]);
  }
  // Sections in the order of GROUPS (roles first), whatever the order of SETTINGS.
  const order = [...GROUPS.map(([g]) => g), 'Other settings:'];
  for (const [group, flags] of [...groups].sort(([a], [b]) => order.indexOf(a) - order.indexOf(b))) out = out.group(flags, group);
  return out.group(['config'], 'Config file:');
}
