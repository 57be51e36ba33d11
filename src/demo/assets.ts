/**
 * Built browser files (the SDK bundle and the demo page) read from dist/ on
 * first request and kept in memory: a fixed, small set of files, so the cache
 * is bounded by construction.
 */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import type { ServerResponse } from 'node:http';
import { ErrorCodes, TidingsError } from '../protocol/errors.js';
import { sendError } from '../http/io.js';

/** dist/ (this module is dist/src/demo/assets.js once compiled). */
export const DIST_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

const TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.html': 'text/html; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.map': 'application/json; charset=utf-8',
};

export class AssetFiles {
  private readonly cache = new Map<string, Promise<Buffer>>();

  /** `files` maps a URL path to a file under dist/; nothing else is ever read. */
  constructor(private readonly files: Readonly<Record<string, string>>) {}

  has(path: string): boolean {
    return Object.hasOwn(this.files, path);
  }

  serve(path: string, method: string | undefined, res: ServerResponse): void {
    if (method !== 'GET' && method !== 'HEAD') {
      sendError(res, new TidingsError(ErrorCodes.METHOD_NOT_ALLOWED, `${method} ${path}`));
      return;
    }
    const rel = this.files[path]!;
    let body = this.cache.get(rel);
    if (!body) {
      body = readFile(join(DIST_DIR, rel));
      this.cache.set(rel, body);
    }
    body.then(
      (buf) => {
        const ext = rel.slice(rel.lastIndexOf('.'));
        res.writeHead(200, {
          'content-type': TYPES[ext] ?? 'application/octet-stream',
          'content-length': buf.length,
          'cache-control': 'no-cache',
          'x-content-type-options': 'nosniff',
        });
        res.end(method === 'HEAD' ? undefined : buf);
      },
      () => {
        this.cache.delete(rel);
        sendError(res, new TidingsError(ErrorCodes.NOT_FOUND, `${rel} is not built: run npm run build`));
      },
    );
  }
}
