#!/usr/bin/env node
/** The `tidings` program: one yargs command module per command. */
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { serveCommand } from './serve.js';
import { publishCommand } from './publish.js';
import { tokenCommand } from './token.js';
import { tickerCommand } from './ticker.js';
import { keygenCommand } from './keygen.js';

await yargs(hideBin(process.argv))
  .scriptName('tidings')
  .command(serveCommand)
  .command(publishCommand as never)
  .command(tokenCommand as never)
  .command(tickerCommand as never)
  .command(keygenCommand as never)
  .demandCommand(1, 'give a command: serve, publish, token, ticker or keygen')
  .strict()
  .wrap(Math.min(120, process.stdout.columns || 120))
  .help()
  .parseAsync();
