/**
 * The chaos suite: `npm run chaos -- [--scenarios a,b] [--rate 200] ...`.
 * Each scenario runs on a fresh cluster of real processes; the table of
 * figures is printed and written with the machine's description to
 * <out>/results.md and results.json. `--help` lists every option.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { SETTING_NAMES } from '../src/config/settings.js';
import { runScenario, type RunOptions, type ScenarioResult } from './lib/harness.js';
import { markdownTable } from './lib/report.js';
import { SCENARIOS, scenarioByName } from './scenarios/index.js';

const here = dirname(fileURLToPath(import.meta.url));

const argv = yargs(hideBin(process.argv))
  .scriptName('npm run chaos --')
  .usage('$0 [options]\n\nRuns chaos scenarios against a cluster of real processes and prints what subscribers lost.')
  .option('scenarios', { type: 'string', describe: `Comma-separated scenarios (default: all): ${SCENARIOS.map((s) => s.name).join(', ')}` })
  .option('list', { type: 'boolean', default: false, describe: 'List the scenarios and exit' })
  .option('rate', { type: 'number', default: 200, describe: 'Acknowledged publishes a second' })
  .option('warmup', { type: 'number', default: 3, describe: 'Seconds of publishing before the fault' })
  .option('duration', { type: 'number', default: 10, describe: 'Seconds of publishing after the fault is over' })
  .option('drain', { type: 'number', default: 5, describe: 'Seconds without a delivery after which late messages count as missing' })
  .option('subscribers', { type: 'number', default: 4, describe: 'SDK subscribers per node' })
  .option('nodes', { type: 'number', default: 2, describe: 'Forwarder nodes' })
  .option('workers', { type: 'number', default: 2, describe: 'Edge workers per node' })
  .option('ack-timeout', { type: 'number', default: 10, describe: 'Seconds a publish waits for its acknowledgement' })
  .option('pause', { type: 'number', default: 5, describe: 'Seconds a paused process stays stopped (director-pause)' })
  .option('restart-delay', { type: 'number', default: 0, describe: 'Seconds between killing and restarting (director-restart)' })
  .option('set', { type: 'string', array: true, default: [] as string[], describe: 'A Tidings setting for every process, name=value (repeatable), e.g. --set history_size=1000' })
  .option('retry-delay', { type: 'number', describe: "SDK initialRetryDelay in seconds (default: the SDK's)" })
  .option('max-retry-delay', { type: 'number', describe: "SDK maxRetryDelay in seconds (default: the SDK's)" })
  .option('out', { type: 'string', default: join(here, '..', '..', 'chaos', 'results'), describe: 'Directory for results.md and results.json' })
  .option('logs', { type: 'string', describe: "Directory for every process' full log (default: keep only their tails)" })
  .option('check', { type: 'boolean', default: false, describe: 'Exit 1 when any scenario has missing, duplicated or reordered messages or did not recover' })
  .strict()
  .help()
  .parseSync();

function fail(message: string): never {
  process.stderr.write(`chaos: ${message}\n`);
  process.exit(2);
}

if (argv.list) {
  for (const s of SCENARIOS) process.stdout.write(`${s.name}\n  ${s.title}\n  ${s.description}\n\n`);
  process.exit(0);
}

const chosen = (argv.scenarios ? argv.scenarios.split(',').map((x) => x.trim()).filter(Boolean) : SCENARIOS.map((s) => s.name)).map(
  (name) => scenarioByName(name) ?? fail(`unknown scenario ${name}; --list shows them`),
);
const settings: Record<string, string> = {};
for (const kv of argv.set) {
  const eq = kv.indexOf('=');
  const name = eq > 0 ? kv.slice(0, eq) : '';
  if (!SETTING_NAMES.has(name)) fail(`--set ${kv}: not name=value with a Tidings setting name`);
  settings[name] = kv.slice(eq + 1);
}
for (const [name, v] of Object.entries({ rate: argv.rate, subscribers: argv.subscribers, nodes: argv.nodes, workers: argv.workers })) {
  if (!(v >= 1) || !Number.isFinite(v)) fail(`--${name} must be at least 1`);
}

const sdk: RunOptions['sdk'] = {};
if (argv['retry-delay'] !== undefined) sdk.initialRetryDelay = argv['retry-delay'];
if (argv['max-retry-delay'] !== undefined) sdk.maxRetryDelay = argv['max-retry-delay'];
if (argv.logs) mkdirSync(argv.logs, { recursive: true });

const options: RunOptions = {
  rate: argv.rate,
  warmupSeconds: argv.warmup,
  afterSeconds: argv.duration,
  drainQuietSeconds: argv.drain,
  subscribersPerNode: argv.subscribers,
  ackTimeout: argv['ack-timeout'],
  nodes: argv.nodes,
  workers: argv.workers,
  settings,
  params: { pauseSeconds: argv.pause, restartDelaySeconds: argv['restart-delay'] },
  sdk,
  logDir: argv.logs ?? null,
  progress: (line) => process.stdout.write(`${line}\n`),
};

function machine(): string {
  const c = cpus();
  const load = loadavg()
    .map((x) => x.toFixed(1))
    .join(' ');
  return `Node ${process.version}, ${c.length} × ${c[0]?.model ?? 'unknown CPU'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, load average ${load}`;
}

async function main(): Promise<void> {
  const command = `npm run chaos -- ${process.argv.slice(2).join(' ')}`.trim();
  const startMachine = machine();
  process.stdout.write(`# ${command}\n# ${startMachine}\n`);
  const results: ScenarioResult[] = [];
  const failures: string[] = [];
  for (const s of chosen) {
    process.stdout.write(`${s.name}: ${s.title}\n`);
    try {
      const r = await runScenario(s, options);
      results.push(r);
      process.stdout.write(markdownTable([r]).split('\n').slice(2).join('\n'));
    } catch (err) {
      // One scenario that could not run (a node that did not start on a loaded machine) does not lose the others.
      const message = err instanceof Error ? err.message : String(err);
      failures.push(`${s.name}: ${message.split('\n')[0]}`);
      process.stderr.write(`chaos: ${s.name} could not run: ${message}\n`);
    }
  }
  const table = markdownTable(results) + failures.map((f) => `\nNot run: ${f}\n`).join('');
  const endMachine = machine();
  process.stdout.write(`\n${table}\n# at the end: ${endMachine}\n`);
  mkdirSync(argv.out, { recursive: true });
  writeFileSync(join(argv.out, 'results.md'), `Command: \`${command}\`\n\nMachine at the start: ${startMachine}\n\nAt the end: ${endMachine}\n\n${table}`);
  writeFileSync(join(argv.out, 'results.json'), JSON.stringify({ command, machine: { start: startMachine, end: endMachine }, options: { ...options, progress: undefined }, results, failures }, null, 2) + '\n');
  process.stdout.write(`# written to ${argv.out}/results.md and results.json\n`);
  if (failures.length > 0) process.exitCode = 1;
  if (argv.check) {
    const bad = results.filter((r) => r.figures.missing + r.figures.duplicated + r.figures.reordered > 0 || r.figures.recoveryMs === null);
    if (bad.length > 0) {
      process.stderr.write(`chaos: ${bad.map((r) => r.scenario).join(', ')} lost, repeated or reordered messages, or did not recover\n`);
      process.exitCode = 1;
    }
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`chaos: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
