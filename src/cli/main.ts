#!/usr/bin/env -S GLIBC_TUNABLES=glibc.malloc.hugetlb=1 node --max-semi-space-size=4 --initial-old-space-size=64
/** The `tidings` program: one yargs command module per command. */
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { serveCommand } from './serve.js';
import { publishCommand } from './publish.js';
import { tokenCommand } from './token.js';
import { tickerCommand } from './ticker.js';
import { healthCommand } from './health.js';
import { keygenCommand } from './keygen.js';
import { exitUsage, isUsageError } from './usage.js';
import { joinKeyArguments } from './key-arguments.js';

const COMMANDS = ['serve', 'publish', 'token', 'ticker', 'health', 'keygen'];
const command = process.argv.slice(2).find((a) => !a.startsWith('-'));
const helpHint = COMMANDS.includes(command ?? '') ? `tidings ${command} --help` : 'tidings --help';

/** yargs' own messages, made one line with a pointer to the help. */
function usageMessage(msg: string): string {
  const unknown = /^Unknown arguments?: (.*)$/.exec(msg);
  if (unknown && command !== undefined && !COMMANDS.includes(command)) return `unknown command ${command}: give one of ${COMMANDS.join(', ')}`;
  if (unknown) return `unknown option or value ${unknown[1]} (${helpHint} lists the options)`;
  const missing = /^Missing required arguments?: (.*)$/.exec(msg);
  if (missing) return `missing --${missing[1]!.split(', ').join(', --')} (${helpHint})`;
  const unknownCommand = /^Unknown command: (.*)$/.exec(msg);
  if (unknownCommand) return `unknown command ${unknownCommand[1]}: give one of ${COMMANDS.join(', ')}`;
  return `${msg.replace(/\n+/g, ' ')} (${helpHint})`;
}

await yargs(joinKeyArguments(hideBin(process.argv)))
  .scriptName('tidings')
  // Values reach the settings' own checks as typed, so "0123" stays a string and errors name the setting.
  .parserConfiguration({ 'parse-numbers': false, 'parse-positional-numbers': false })
  .command(serveCommand)
  .command(publishCommand as never)
  .command(tokenCommand as never)
  .command(tickerCommand as never)
  .command(healthCommand as never)
  .command(keygenCommand as never)
  .demandCommand(1, `give a command: ${COMMANDS.join(', ')}`)
  .strict()
  .showHelpOnFail(false)
  .fail((msg, err) => {
    if (err && !isUsageError(err) && err.name !== 'YError') {
      process.stderr.write(`tidings: ${err.message}\n`);
      process.exit(1);
    }
    exitUsage(err && isUsageError(err) ? err.message : usageMessage(msg ?? err?.message ?? 'bad usage'));
  })
  .wrap(Math.min(120, process.stdout.columns || 120))
  .help()
  .version(false)
  .parseAsync();
