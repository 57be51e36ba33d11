/**
 * Z85, the text form of CURVE keys, uses "-" among its characters, so one key
 * in 85 starts with it. Given as `--curve-server-key -abc...`, yargs (like any
 * getopt) reads the key as a cluster of short flags and the option as empty.
 * Joining such a value to its flag (`--curve-server-key=-abc...`) keeps the
 * usual spaced form working for every key.
 */
import { SETTINGS, flagName } from '../config/settings.js';

/** Flags whose value is a key or a comma-separated list of keys. */
export const KEY_VALUED_FLAGS: ReadonlySet<string> = new Set([
  'curve-secret-key',
  'curve-server-key',
  ...SETTINGS.filter((s) => /^curve_.*keys?$/.test(s.name)).map((s) => flagName(s.name)),
]);

/** argv with each `--flag VALUE` of a key-valued flag whose VALUE starts with "-" written `--flag=VALUE`. */
export function joinKeyArguments(argv: readonly string[], flags: ReadonlySet<string> = KEY_VALUED_FLAGS): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') return out.concat(argv.slice(i));
    const next = argv[i + 1];
    if (arg.startsWith('--') && flags.has(arg.slice(2)) && next !== undefined && next.startsWith('-') && next !== '--') {
      out.push(`${arg}=${next}`);
      i++;
    } else {
      out.push(arg);
    }
  }
  return out;
}
