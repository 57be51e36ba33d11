#!/usr/bin/env node
// Browser build, run by `npm run build` after tsc:
//   dist/client/tidings.js  the client SDK as one ES module (src/client + src/protocol)
//   dist/demo/              the demo page: index.html, demo.css and demo.js, whose
//                           `./tidings.js` import stays external so the page loads
//                           the SDK the edge serves at <base>/tidings.js
//   dist/admin/             the admin page: index.html, admin.css and admin.js
import { build } from 'esbuild';
import { cpSync, mkdirSync } from 'node:fs';

const common = { bundle: true, format: 'esm', platform: 'browser', target: 'es2020', sourcemap: true, legalComments: 'none', logLevel: 'warning' };

await build({ ...common, entryPoints: ['src/client/index.ts'], outfile: 'dist/client/tidings.js' });

const sdkExternal = {
  name: 'sdk-external',
  setup(b) {
    b.onResolve({ filter: /^\.\/tidings\.js$/ }, () => ({ path: './tidings.js', external: true }));
  },
};
await build({ ...common, entryPoints: ['src/demo/app.ts'], outfile: 'dist/demo/demo.js', plugins: [sdkExternal] });

mkdirSync('dist/demo', { recursive: true });
cpSync('src/demo/public', 'dist/demo', { recursive: true });

await build({ ...common, entryPoints: ['src/admin/app.ts'], outfile: 'dist/admin/admin.js' });
cpSync('src/admin/public', 'dist/admin', { recursive: true });
