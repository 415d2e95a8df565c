import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { categoryOf, readProfile, summariseProfile, type CpuProfile } from '../../bench/lib/profile.js';

/** A profile by hand: root → handler (server) → pg query; plus idle and GC. Each sample lasts 1 ms. */
function synthetic(): CpuProfile {
  const frame = (functionName: string, url: string, lineNumber = 0) => ({ functionName, url, lineNumber, columnNumber: 0 });
  const nodes = [
    { id: 1, callFrame: frame('(root)', '', -1), children: [2, 5, 6] },
    { id: 2, callFrame: frame('sendMessage', 'file:///app/dist/server/core/messaging.js', 9), children: [3, 4] },
    { id: 3, callFrame: frame('query', 'file:///app/node_modules/pg/lib/client.js', 40) },
    { id: 4, callFrame: frame('hset', 'file:///app/node_modules/ioredis/built/Redis.js', 7) },
    { id: 5, callFrame: frame('(idle)', '', -1) },
    { id: 6, callFrame: frame('(garbage collector)', '', -1) },
  ];
  // 10 samples, 1000 µs apart, starting at 1,000,000 µs: pg ×4, handler ×2, redis ×1, GC ×1, idle ×2.
  const samples = [3, 3, 2, 3, 4, 6, 2, 3, 5, 5];
  return { nodes, startTime: 1_000_000, endTime: 1_011_000, samples, timeDeltas: samples.map(() => 1000) };
}

describe('bench: CPU profile summariser', () => {
  it('puts the most self time first and attributes it to its library', () => {
    const s = summariseProfile(synthetic());
    expect(s.totalUs).to.equal(10_000);
    expect(s.busyUs).to.equal(8_000); // idle is not work
    expect(s.top[0]).to.include({ name: 'query', location: 'node_modules/pg/lib/client.js:41', us: 4000 });
    expect(s.top[0]!.share).to.equal(0.5);
    const cats = Object.fromEntries(s.categories.map((c) => [c.category, c.us]));
    expect(cats).to.deep.equal({ pg: 4000, 'parley (server/)': 2000, ioredis: 1000, GC: 1000 });
  });

  it("counts a server function's callees in its inclusive time", () => {
    const s = summariseProfile(synthetic());
    expect(s.inclusive[0]).to.include({ name: 'sendMessage', location: 'dist/server/core/messaging.js:10', us: 7000 });
  });

  it('keeps only samples inside the measured window', () => {
    // Samples are taken at 1,001,000 … 1,010,000; keep the first three (pg, pg, handler).
    const s = summariseProfile(synthetic(), { window: { fromUs: 1_000_500, toUs: 1_003_500 } });
    expect(s.totalUs).to.equal(3000);
    expect(Object.fromEntries(s.categories.map((c) => [c.category, c.us]))).to.deep.equal({ pg: 2000, 'parley (server/)': 1000 });
  });

  it('charges native socket writes to the library that wrote (writev under pg is Postgres time)', () => {
    const frame = (functionName: string, url: string) => ({ functionName, url, lineNumber: 0, columnNumber: 0 });
    const profile: CpuProfile = {
      nodes: [
        { id: 1, callFrame: frame('(root)', ''), children: [2, 5] },
        { id: 2, callFrame: frame('query', 'file:///a/node_modules/pg/lib/client.js'), children: [3] },
        { id: 3, callFrame: frame('Socket._writev', 'node:net'), children: [4] },
        { id: 4, callFrame: frame('writev', '') },
        { id: 5, callFrame: frame('end', 'node:_http_outgoing'), children: [6] },
        { id: 6, callFrame: frame('writev', '') },
      ],
      startTime: 0,
      endTime: 4000,
      samples: [4, 4, 4, 6],
      timeDeltas: [0, 1000, 1000, 1000],
    };
    const rows = summariseProfile(profile).nativeByCaller.map((r) => [r.native, r.caller, r.us]);
    expect(rows).to.deep.equal([
      ['writev', 'pg', 3000],
      ['writev', 'node http/net/streams', 1000], // nothing above node's own layer: named after it
    ]);
  });

  it('names the families the issue asks about', () => {
    const f = (functionName: string, url: string) => categoryOf({ functionName, url, lineNumber: 0 });
    expect(f('handle', 'file:///x/node_modules/router/index.js')).to.equal('express');
    expect(f('parse', 'file:///x/node_modules/body-parser/lib/types/json.js')).to.equal('JSON');
    expect(f('update', 'node:internal/crypto/hash')).to.equal('crypto');
    expect(f('(garbage collector)', '')).to.equal('GC');
    expect(f('parseReply', 'file:///x/node_modules/redis-parser/lib/parser.js')).to.equal('ioredis');
    expect(f('writev', '')).to.equal('V8/native (program)');
  });

  it('reads a real profile from node --cpu-prof, and a window taken with process.hrtime picks out the hashing loop', async function () {
    this.timeout(30_000);
    const dir = await mkdtemp(path.join(os.tmpdir(), 'parley-prof-'));
    try {
      const script = path.join(dir, 'busy.mjs');
      // The window comes from another clock reading than the profile's own: this is what the
      // load benchmark relies on to cut the nodes' profiles to its measured phase.
      await writeFile(
        script,
        `import { createHash } from 'node:crypto';
         const data = Buffer.alloc(1 << 20, 7);
         const from = process.hrtime.bigint() / 1000n;
         const end = Date.now() + 300;
         while (Date.now() < end) createHash('sha256').update(data).digest();
         console.log(String(from), String(process.hrtime.bigint() / 1000n));`,
      );
      const { stdout } = await promisify(execFile)(process.execPath, ['--cpu-prof', '--cpu-prof-dir', dir, script]);
      const [fromUs, toUs] = stdout.trim().split(' ').map(Number);
      const file = (await readdir(dir)).find((f) => f.endsWith('.cpuprofile'))!;
      const s = summariseProfile(readProfile(path.join(dir, file)), { window: { fromUs: fromUs!, toUs: toUs! } });
      expect(s.totalUs).to.be.within(200_000, 2_000_000);
      expect(s.categories[0]?.category, JSON.stringify(s.categories)).to.equal('crypto');
      expect(s.categories[0]!.share).to.be.greaterThan(0.5);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
