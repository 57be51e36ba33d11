/**
 * `tidings token`: sign a client token (JWT HS256) for tests, scripts and
 * backends. The key is the token_secret setting, read as `serve` reads it
 * (--token-secret, TIDINGS_TOKEN_SECRET, a config file's token_secret, or
 * --development for the published development secret of `npm start`).
 */
import type { CommandModule } from 'yargs';
import { checkTokenSecret } from '../config/resolve.js';
import { isValidGrant, isValidUser } from '../protocol/names.js';
import { loadSettings } from './load-config.js';
import { addSettingOptions } from './setting-options.js';
import { intOption, orUsage, stringOption, UsageError } from './usage.js';

/** A year: a longer-lived token is better replaced by a token endpoint in your app. */
const MAX_TTL = 31_536_000;

interface TokenArgs {
  user?: unknown;
  ttl?: unknown;
  subscribe: string[];
  publish: string[];
  call: string[];
  register: string[];
  [key: string]: unknown;
}

function grants(name: string, list: string[]): string[] {
  for (const g of list) if (!isValidGrant(g)) throw new UsageError(`--${name} ${JSON.stringify(g)} is not a channel name or a prefix* pattern`);
  return list;
}

export const tokenCommand: CommandModule<object, TokenArgs> = {
  command: 'token',
  describe: 'Print a client token signed with the token secret',
  builder: (y) =>
    addSettingOptions(y, ['token_secret', 'development'])
      .option('user', { describe: 'User id (the token subject)', demandOption: true, requiresArg: true })
      .option('ttl', { describe: `Lifetime in seconds, 1-${MAX_TTL} [default: 3600]`, requiresArg: true })
      .option('subscribe', { type: 'array', string: true, default: [] as string[], describe: 'Channels (or prefix* patterns) the user may subscribe to' })
      .option('publish', { type: 'array', string: true, default: [] as string[], describe: 'Channels (or prefix* patterns) the user may publish to' })
      .option('call', { type: 'array', string: true, default: [] as string[], describe: 'WAMP procedures (or prefix* patterns) the user may call' })
      .option('register', { type: 'array', string: true, default: [] as string[], describe: 'WAMP procedures (or prefix* patterns) the user may register' })
      .option('secret', { hidden: true, requiresArg: true, describe: 'Deprecated spelling of --token-secret' }),
  handler: async (a) => {
    const req = orUsage(() => {
      const user = stringOption('user', a.user);
      if (!isValidUser(user)) throw new UsageError(`--user must be 1-200 characters without control characters, got ${JSON.stringify(a.user)}`);
      const ttl = a.ttl === undefined ? 3600 : intOption('ttl', a.ttl, 1, MAX_TTL);
      if (a['secret'] !== undefined) {
        process.stderr.write('tidings token: --secret is deprecated, use --token-secret (the token_secret setting, as in serve; serve --secret is the channelstream secret)\n');
        if (a['token-secret'] === undefined) a['token-secret'] = stringOption('secret', a['secret']);
      }
      const { values, origins } = loadSettings(['token_secret', 'development'], a, process.env);
      const secret = values['token_secret'] as string | null;
      if (secret === null) throw new UsageError('no token secret: give --token-secret, TIDINGS_TOKEN_SECRET or a config file with token_secret (or --development for the secret of npm start)');
      const o = origins['token_secret']!;
      checkTokenSecret(secret, o === 'flag' ? '--token-secret' : o === 'env' ? 'TIDINGS_TOKEN_SECRET' : o === 'file' ? 'config file key "token_secret"' : 'development value');
      return { secret, user, ttl, subscribe: grants('subscribe', a.subscribe), publish: grants('publish', a.publish), call: grants('call', a.call), register: grants('register', a.register) };
    });
    const { signToken } = await import('../auth/sign.js');
    process.stdout.write(`${await signToken(req)}\n`);
  },
};
