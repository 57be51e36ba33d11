#!/usr/bin/env node
// Browser build, run by `npm run build` after tsc:
//   dist/client/tidings.js  the client SDK as one ES module (src/client + src/protocol)
//   dist/client/sockjs.min.js  sockjs-client's browser build, copied
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

// sockjs-client's own browser build: edges serve it at <base>/sockjs.min.js for SockJS' iframe
// transports and for the SDK, which loads it only when it has to fall back from websockets.
mkdirSync('dist/client', { recursive: true });
cpSync('node_modules/sockjs-client/dist/sockjs.min.js', 'dist/client/sockjs.min.js');

mkdirSync('dist/demo', { recursive: true });
cpSync('src/demo/public', 'dist/demo', { recursive: true });

await build({ ...common, entryPoints: ['src/admin/app.ts'], outfile: 'dist/admin/admin.js' });
cpSync('src/admin/public', 'dist/admin', { recursive: true });
