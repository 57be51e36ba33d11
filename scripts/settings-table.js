#!/usr/bin/env node
// Prints the settings table of docs/configuration.md from src/config/settings.ts
// (after `npm run build`): node scripts/settings-table.js > /tmp/t && paste it in.
import { SETTINGS, envName, flagName } from '../dist/src/config/settings.js';

const show = (v) => (v === null ? '—' : Array.isArray(v) ? (v.length ? `\`${v.join(',')}\`` : 'empty') : `\`${String(v)}\``);
let out = '| setting (config file key) | flag | environment | default | meaning |\n|---|---|---|---|---|\n';
for (const s of SETTINGS) {
  const flag = `\`--${flagName(s.name)}\`${s.alias ? ` (\`--${s.alias}\`)` : ''}`;
  out += `| \`${s.name}\` | ${flag} | \`${envName(s.name)}\` | ${show(s.default)} | ${s.describe.replace(/\|/g, '\\|')} |\n`;
}
process.stdout.write(out);
