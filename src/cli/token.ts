/** `tidings token`: sign a client token (JWT HS256) for tests, scripts and backends. */
import type { CommandModule } from 'yargs';
import { signToken } from '../auth/sign.js';

interface TokenArgs {
  user: string;
  ttl: number;
  subscribe: string[];
  publish: string[];
  call: string[];
  register: string[];
  secret?: string;
}

export const tokenCommand: CommandModule<object, TokenArgs> = {
  command: 'token',
  describe: 'Print a client token signed with the token secret',
  builder: (y) =>
    y
      .option('user', { type: 'string', demandOption: true, describe: 'User id (the token subject)' })
      .option('ttl', { type: 'number', default: 3600, describe: 'Lifetime in seconds' })
      .option('subscribe', { type: 'array', string: true, default: [] as string[], describe: 'Channels (or prefix* patterns) the user may subscribe to' })
      .option('publish', { type: 'array', string: true, default: [] as string[], describe: 'Channels (or prefix* patterns) the user may publish to' })
      .option('call', { type: 'array', string: true, default: [] as string[], describe: 'WAMP procedures (or prefix* patterns) the user may call' })
      .option('register', { type: 'array', string: true, default: [] as string[], describe: 'WAMP procedures (or prefix* patterns) the user may register' })
      .option('secret', { type: 'string', describe: 'Token secret [env TIDINGS_TOKEN_SECRET]' }),
  handler: async (a) => {
    const secret = a.secret ?? process.env['TIDINGS_TOKEN_SECRET'];
    if (!secret || secret.length < 32) {
      process.stderr.write('tidings token: a token secret of at least 32 characters is required (--secret or TIDINGS_TOKEN_SECRET)\n');
      process.exit(2);
    }
    const token = await signToken({ secret, user: a.user, ttl: a.ttl, subscribe: a.subscribe, publish: a.publish, call: a.call, register: a.register });
    process.stdout.write(`${token}\n`);
  },
};
