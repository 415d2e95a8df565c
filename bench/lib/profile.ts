import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

/**
 * Summarise a V8 .cpuprofile (node --cpu-prof): self time per function, the share of time spent in
 * each library family (pg, ioredis, express, JSON, crypto, GC, …), and the inclusive time of the
 * server's own functions, optionally restricted to a time window (the measured phase of a run),
 * so start-up and account set-up (password hashing) do not hide the steady state.
 *
 * Profile timestamps are microseconds on the monotonic clock, the same clock as
 * process.hrtime.bigint() / 1000 in any process on the machine, so a window measured by the load
 * process applies to the nodes' profiles directly.
 */

/** The subset of the .cpuprofile format this reads. */
export type CpuProfile = {
  nodes: Array<{
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number; columnNumber?: number };
    children?: number[];
  }>;
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
};

/** One function's time. */
export type FunctionTime = { name: string; location: string; us: number; share: number };

/** What summariseProfile finds. */
export type ProfileSummary = {
  /** Sampled time inside the window, µs, idle included. */
  totalUs: number;
  /** Sampled time not idle, µs: the denominator of every share. */
  busyUs: number;
  /** Top functions by self time (idle excluded). */
  top: FunctionTime[];
  /** Self time per family, largest first. */
  categories: Array<{ category: string; us: number; share: number }>;
  /** Top functions of the server itself (server/…) by inclusive time. */
  inclusive: FunctionTime[];
  /**
   * Native frames (writev, writeBuffer, …) by the family of their nearest JavaScript caller:
   * "writev ← pg" is time in socket writes to Postgres (node's own layer when no library is above it).
   */
  nativeByCaller: Array<{ native: string; caller: string; us: number; share: number }>;
};

type Frame = CpuProfile['nodes'][number]['callFrame'];

const EXPRESS = /node_modules\/(express|router|body-parser|raw-body|iconv-lite|on-finished|on-headers|finalhandler|send|serve-static|qs|type-is|content-type|content-disposition|accepts|negotiator|mime-types|mime-db|cookie|cookie-signature|helmet|path-to-regexp|depd|http-errors|statuses|parseurl|encodeurl|escape-html|vary|proxy-addr|forwarded|fresh|etag|range-parser|media-typer|cors|merge-descriptors|setprototypeof|bytes|unpipe|ee-first|debug|ms)\//;

/**
 * The family a frame belongs to. V8 does not show builtins such as JSON.parse as frames: their time
 * lands on the caller, so "JSON" counts the callers that do little else (body-parser's json
 * parser, res.json, functions named parse or stringify): a close lower bound.
 */
export function categoryOf(f: Frame): string {
  const { functionName: fn, url } = f;
  if (fn === '(idle)') return 'idle';
  if (fn === '(garbage collector)') return 'GC';
  if (fn === '(program)') return 'V8/native (program)';
  if (fn === '(root)') return 'V8/native (program)';
  if (/body-parser\/lib\/types\/json\.js/.test(url) || (/express\/lib\/response\.js/.test(url) && /^json/.test(fn))) return 'JSON';
  if (/^(JSON\.)?(parse|stringify)$/.test(fn) && (url === '' || url.startsWith('node:'))) return 'JSON';
  if (/node_modules\/(safe-stable-stringify|fast-json-stringify|secure-json-parse)\//.test(url)) return 'JSON';
  if (/node_modules\/(pg|pg-protocol|pg-pool|pg-types|pg-connection-string|pgpass|postgres-array|postgres-bytea|postgres-date|postgres-interval|pg-int8|split2|buffer-writer|packet-reader)\//.test(url)) return 'pg';
  if (/node_modules\/(ioredis|@ioredis\/[^/]+|redis-parser|redis-errors|cluster-key-slot|denque|standard-as-callback|lodash\.[a-z]+)\//.test(url)) return 'ioredis';
  if (EXPRESS.test(url)) return 'express';
  if (url.startsWith('node:internal/crypto') || url === 'node:crypto' || /^(scrypt|pbkdf2|randomBytes|createCipheriv|createDecipheriv|timingSafeEqual)/.test(fn)) return 'crypto';
  if (/node_modules\/(pino|pino-std-serializers|sonic-boom|thread-stream|quick-format-unescaped|atomic-sleep|on-exit-leak-free|real-require|fast-redact)\//.test(url)) return 'pino';
  if (/node_modules\/zod\//.test(url)) return 'zod';
  if (/node_modules\/(prom-client|tdigest|bintrees)\//.test(url)) return 'prom-client';
  if (/node_modules\/(tsx|esbuild|get-tsconfig)\//.test(url)) return 'tsx loader';
  if (/^node:(_http_|http|https|net|dns|stream|internal\/(http|streams?|net|dns|stream_base_commons|js_stream_socket|tls))/.test(url)) return 'node http/net/streams';
  if (/^node:internal\/(timers|process\/task_queues|async_hooks|process\/promises)/.test(url) || url === 'node:timers') return 'node timers/promises';
  if (url.startsWith('node:')) return 'node other';
  if (url.includes('node_modules/')) return 'other node_modules';
  if (/\/server\//.test(url)) return 'parley (server/)';
  if (url === '') return 'V8/native (program)';
  return 'other';
}

/** A short, readable location: "server/core/x.ts:12", "node_modules/pg/lib/client.js:40", "node:net:300". */
export function shortLocation(f: Frame): string {
  let url = f.url;
  if (!url) return '(native)';
  url = url.replace(/^file:\/\//, '');
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) url = url.slice(nm);
  else {
    const s = url.search(/\/(server|dist|bench|test)\//);
    if (s >= 0) url = url.slice(s + 1);
  }
  return `${url}:${f.lineNumber + 1}`;
}

/** Summarise `profile`; `window` (µs on the monotonic clock) keeps only samples taken inside it. */
export function summariseProfile(
  profile: CpuProfile,
  opts: { window?: { fromUs: number; toUs: number }; top?: number; inclusiveTop?: number } = {},
): ProfileSummary {
  const topN = opts.top ?? 25;
  const byId = new Map<number, CpuProfile['nodes'][number]>();
  const parent = new Map<number, number>();
  for (const n of profile.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  const keyOf = (f: Frame): string => `${f.functionName || '(anonymous)'}\u0000${shortLocation(f)}`;

  // Self time per node id. A sample lasts until the next one (the last one until endTime).
  const selfById = new Map<number, number>();
  const n = profile.samples.length;
  let t = profile.startTime;
  const times = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    t += profile.timeDeltas[i] ?? 0;
    times[i] = t;
  }
  let totalUs = 0;
  for (let i = 0; i < n; i++) {
    const at = times[i]!;
    if (opts.window && (at < opts.window.fromUs || at > opts.window.toUs)) continue;
    const dur = Math.max(0, (i + 1 < n ? times[i + 1]! : profile.endTime) - at);
    const id = profile.samples[i]!;
    selfById.set(id, (selfById.get(id) ?? 0) + dur);
    totalUs += dur;
  }

  const selfByKey = new Map<string, { frame: Frame; us: number }>();
  const byCategory = new Map<string, number>();
  let idleUs = 0;
  for (const [id, us] of selfById) {
    const frame = byId.get(id)!.callFrame;
    const cat = categoryOf(frame);
    if (cat === 'idle') {
      idleUs += us;
      continue;
    }
    byCategory.set(cat, (byCategory.get(cat) ?? 0) + us);
    const k = keyOf(frame);
    const e = selfByKey.get(k);
    if (e) e.us += us;
    else selfByKey.set(k, { frame, us });
  }
  const busyUs = totalUs - idleUs;
  const share = (us: number): number => (busyUs > 0 ? us / busyUs : 0);

  // Inclusive time of the server's own functions: each sample counts once per distinct function
  // on its stack (recursion does not double-count).
  const inclusiveByKey = new Map<string, { frame: Frame; us: number }>();
  for (const [id, us] of selfById) {
    if (categoryOf(byId.get(id)!.callFrame) === 'idle') continue;
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const frame = byId.get(cur)!.callFrame;
      if (!/\/server\//.test(frame.url) || frame.url.includes('node_modules/')) continue;
      const k = keyOf(frame);
      if (seen.has(k)) continue;
      seen.add(k);
      const e = inclusiveByKey.get(k);
      if (e) e.us += us;
      else inclusiveByKey.set(k, { frame, us });
    }
  }

  const nativeBy = new Map<string, number>();
  for (const [id, us] of selfById) {
    const frame = byId.get(id)!.callFrame;
    if (frame.url !== '' || frame.functionName.startsWith('(')) continue;
    let caller = '(none)';
    for (let cur = parent.get(id); cur !== undefined; cur = parent.get(cur)) {
      const f = byId.get(cur)!.callFrame;
      if (f.url !== '') {
        caller = categoryOf(f);
        // Node's own stream and socket layers are plumbing: look past them to who wrote.
        if (caller === 'node http/net/streams' || caller === 'node other' || caller === 'node timers/promises') continue;
        break;
      }
    }
    const k = `${frame.functionName}\u0000${caller}`;
    nativeBy.set(k, (nativeBy.get(k) ?? 0) + us);
  }

  const toRows = (m: Map<string, { frame: Frame; us: number }>, limit: number): FunctionTime[] =>
    [...m.values()]
      .sort((a, b) => b.us - a.us)
      .slice(0, limit)
      .map(({ frame, us }) => ({ name: frame.functionName || '(anonymous)', location: shortLocation(frame), us, share: share(us) }));

  return {
    totalUs,
    busyUs,
    top: toRows(selfByKey, topN),
    categories: [...byCategory.entries()].map(([category, us]) => ({ category, us, share: share(us) })).sort((a, b) => b.us - a.us),
    inclusive: toRows(inclusiveByKey, opts.inclusiveTop ?? 15),
    nativeByCaller: [...nativeBy.entries()]
      .map(([k, us]) => {
        const [native, caller] = k.split('\u0000') as [string, string];
        return { native, caller, us, share: share(us) };
      })
      .sort((a, b) => b.us - a.us)
      .slice(0, 10),
  };
}

/** Render a summary as the text the benchmark prints. */
export function formatSummary(title: string, s: ProfileSummary): string {
  const pct = (x: number): string => `${(x * 100).toFixed(1).padStart(5)}%`;
  const msx = (us: number): string => `${(us / 1000).toFixed(0).padStart(7)} ms`;
  const lines = [
    `${title}: ${(s.totalUs / 1e6).toFixed(1)} s sampled, ${(s.busyUs / 1e6).toFixed(1)} s busy (${pct(s.totalUs ? s.busyUs / s.totalUs : 0).trim()} of the window); shares are of busy time`,
    '  by family (self time):',
    ...s.categories.map((c) => `    ${pct(c.share)} ${msx(c.us)}  ${c.category}`),
    `  top ${s.top.length} functions by self time:`,
    ...s.top.map((f) => `    ${pct(f.share)} ${msx(f.us)}  ${f.name}  ${f.location}`),
    `  native time by the family of the JavaScript that called it (node's stream/socket layers skipped):`,
    ...s.nativeByCaller.map((f) => `    ${pct(f.share)} ${msx(f.us)}  ${f.native} ← ${f.caller}`),
    `  server functions by inclusive time:`,
    ...s.inclusive.map((f) => `    ${pct(f.share)} ${msx(f.us)}  ${f.name}  ${f.location}`),
  ];
  return lines.join('\n');
}

/** Read a .cpuprofile file. */
export function readProfile(file: string): CpuProfile {
  return JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
}

// Usable alone: node --import tsx bench/lib/profile.ts FILE.cpuprofile [FROM_US TO_US]
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [file, from, to] = process.argv.slice(2);
  if (!file) {
    console.error('usage: profile.ts FILE.cpuprofile [FROM_US TO_US]');
    process.exit(2);
  }
  const window = from && to ? { fromUs: Number(from), toUs: Number(to) } : undefined;
  console.log(formatSummary(file, summariseProfile(readProfile(file), { window })));
}
