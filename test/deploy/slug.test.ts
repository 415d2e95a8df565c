import { expect } from 'chai';
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort, startParley, waitReady } from '../support/process.js';
import { PG_URL, dropSchema, requireServices, unique } from '../support/services.js';

const run = promisify(execFile);

/**
 * What Heroku leaves on a dyno: the built output and the production dependencies only (it prunes
 * devDependencies after `heroku-postbuild`), so neither tsc nor tsx is there at run time.
 */
describe('the slug: npm ci --omit=dev, then every one-off command and the web process from the built output', function () {
  this.timeout(240_000);
  let slug: string;
  const schema = unique('slug_');
  const env = () => ({
    PATH: process.env['PATH'] ?? '',
    HOME: process.env['HOME'] ?? '/tmp',
    DATABASE_URL: PG_URL,
    DATABASE_SCHEMA: schema,
    MASTER_KEY: '33'.repeat(32),
    DATA_DIR: path.join(slug, 'data'),
    LOG_LEVEL: 'info',
  });
  const npmRun = (script: string, args: string[] = [], extra: Record<string, string> = {}) =>
    run('npm', ['run', '--silent', script, '--', ...args], { cwd: slug, env: { ...env(), ...extra } });

  before(async function () {
    await requireServices(this);
    slug = mkdtempSync(path.join(os.tmpdir(), 'parley-slug-'));
    // The committed files, as the build sees them
    execFileSync('sh', ['-c', `git ls-files -z | xargs -0 tar -cf - | tar -xf - -C "${slug}"`], { stdio: 'pipe' });
    // heroku-postbuild (npm run build) runs with the devDependencies; here the working tree's tsc builds into the slug
    execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', '.', '--outDir', path.join(slug, 'dist')], { stdio: 'pipe' });
    await run('npm', ['ci', '--omit=dev', '--prefer-offline', '--no-audit', '--no-fund'], { cwd: slug });
    mkdirSync(path.join(slug, 'data'));
  });
  after(async () => {
    if (slug) rmSync(slug, { recursive: true, force: true });
    await dropSchema(schema);
  });

  it('has no TypeScript compiler nor tsx to lean on', () => {
    expect(existsSync(path.join(slug, 'node_modules', 'typescript'))).to.equal(false);
    expect(existsSync(path.join(slug, 'node_modules', 'tsx'))).to.equal(false);
    expect(existsSync(path.join(slug, 'dist', 'server', 'main.js'))).to.equal(true);
  });

  it('npm run migrate (the release phase) applies the migrations', async () => {
    const { stdout } = await npmRun('migrate');
    expect(stdout).to.contain('migrations up to date');
  });

  it('npm run archive, rotate-master-key and sweep-blobs (the Scheduler jobs) each run and exit 0', async () => {
    const archive = await npmRun('archive', ['--older-than', '30']);
    expect(archive.stdout).to.contain('archive run done');
    const rotate = await npmRun('rotate-master-key', [], { MASTER_KEY: '44'.repeat(32), MASTER_KEY_PREVIOUS: '33'.repeat(32) });
    expect(rotate.stdout + rotate.stderr).to.not.contain('"level":50');
    const sweep = await npmRun('sweep-blobs', ['--dry-run']);
    expect(sweep.stdout + sweep.stderr).to.not.contain('"level":50');
  });

  it("the Procfile's web command serves, and exits 0 on SIGTERM", async () => {
    const port = await freePort();
    const p = startParley({ ...env(), MASTER_KEY: '44'.repeat(32), PORT: String(port) }, { script: 'dist/server/main.js', cwd: slug });
    try {
      await waitReady(`http://127.0.0.1:${port}`, 60_000, p);
      p.child.kill('SIGTERM');
      expect(await p.exited).to.equal(0);
    } finally {
      p.child.kill('SIGKILL');
    }
  });
});
