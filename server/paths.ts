import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The project's root: the nearest folder above this module holding package.json. The same code
 * runs from server/ (tsx, tests) and from dist/server/ (npm start), so paths are found, not assumed.
 */
function findRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(path.join(dir, 'package.json'))) return dir;
    const up = path.dirname(dir);
    if (up === dir) throw new Error('package.json not found above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
}

/** A path inside the project (sql/, public/), wherever the code runs from. */
export function projectPath(...segments: string[]): string {
  return path.join(ROOT, ...segments);
}

const ROOT = findRoot();
