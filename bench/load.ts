/**
 * Parley's load benchmark (the core issue): two nodes on PostgreSQL + Redis, N users each holding a
 * long-poll (half on each node), S closed-loop senders posting 1-to-1 messages across nodes.
 * Prints delivered messages/s, end-to-end latency, losses, receipts, server RSS per parked poll
 * and CPU use, writes bench/out/load-<date>.json, and with --profile summarises where the nodes'
 * CPU time went during the measured phase.
 *
 *   npm run bench -- --users 1000 --senders 50 --seconds 20
 *   node --import tsx bench/load.ts --users 100 --seconds 5 --profile
 *
 * See bench/README.md for every flag and how to read the figures.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { projectPath } from '../server/paths.js';
import { NodeClient } from './lib/client.js';
import { cpuBetween, snapshot, type Snapshot } from './lib/cpu.js';
import { loadOptions } from './lib/load-options.js';
import { rssBytes, stopNode, type RunningNode } from './lib/nodes.js';
import { formatSummary, readProfile, summariseProfile, type ProfileSummary } from './lib/profile.js';
import { diffTables, PgWatch, type PgActivity, type TableCounters } from './lib/pgwatch.js';
import { onInterrupt, PAIR_IDS, runMain, startPair } from './lib/run.js';
import { checkServices, deleteKeys, dropSchema } from './lib/services.js';
import { sleep } from './lib/sleep.js';
import { ms, round, summarise, sumOf, type LatencySummary } from './lib/stats.js';
import { Workload } from './lib/workload.js';

/** The issue's targets for this first cut. */
const TARGETS = { deliveredPerSecond: 2000, p99Ms: 100, lost: 0, kibPerParked: 30 };

/** Time a node gets to exit after SIGTERM (answer parked polls, close pools, write its profile). */
const STOP_GRACE_MS = 15_000;
/** A node starts (migrations included) well within this. */
const READY_TIMEOUT_MS = 60_000;
/** Polls must have been quiet this long before the parked-memory reading starts its idle time. */
const SETTLE_QUIET_MS = 1000;
/**
 * Longest wait for that quiet: users coming online (or swept offline after an earlier run) send
 * presence to their contacts, and on a busy machine that storm takes tens of seconds to pass; the
 * load must not start inside it.
 */
const SETTLE_TIMEOUT_MS = 60_000;

const say = (msg: string): void => {
  process.stderr.write(`[load ${new Date().toISOString().slice(11, 23)}] ${msg}\n`);
};

/** What --keep saves and --reuse reads: enough to run again on the same accounts. */
type KeptData = { dataTag: string; masterKey: string; users: Array<{ name: string; token: string; conversation: string }> };

function fmtLatency(s: LatencySummary): string {
  return `p50 ${ms(s.p50)}  p95 ${ms(s.p95)}  p99 ${ms(s.p99)}  max ${ms(s.max)}  (n=${s.count})`;
}

function gitCommit(root: string): string | undefined {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return undefined;
  }
}

async function main(): Promise<number> {
  const o = loadOptions(SETTLE_QUIET_MS);
  const root = projectPath();
  const runTag = randomBytes(5).toString('hex');
  // The data (schema, Redis prefix, master key, accounts) may come from an earlier run kept with
  // --keep: set-up hashes a password per user with scrypt, minutes on a busy 2-core machine.
  const kept: KeptData | undefined = o.reuse ? JSON.parse(readFileSync(o.reuse, 'utf8')) : undefined;
  if (kept && kept.users.length !== o.users) {
    console.error(`${o.reuse} holds ${kept.users.length} users; run with --users ${kept.users.length}`);
    return 2;
  }
  const dataTag = kept?.dataTag ?? runTag;
  const schema = `bench_${dataTag}`;
  const prefix = `bench-${dataTag}:`;
  const outDir = path.join(root, 'bench/out');
  const profileDir = path.join(outDir, `prof-${runTag}`);
  mkdirSync(outDir, { recursive: true });
  if (o.profile) mkdirSync(profileDir, { recursive: true });

  const nodes: RunningNode[] = [];
  const clients: NodeClient[] = [];
  let cleaned: Promise<void> | undefined;
  let schemaMayExist = false;
  const keptFile = o.reuse ?? path.join(outDir, `users-${dataTag}.json`);
  const cleanup = (): Promise<void> =>
    (cleaned ??= (async () => {
      for (const c of clients) c.close();
      await Promise.all(nodes.map((n) => stopNode(n, STOP_GRACE_MS).catch((e) => say(`stopping node ${n.id}: ${(e as Error).message}`))));
      if (schemaMayExist && o.keep) {
        say(`kept schema ${schema} and Redis prefix ${prefix} for --reuse ${path.relative(process.cwd(), keptFile)}; drop them by a last run without --keep`);
      } else if (schemaMayExist) {
        await dropSchema(o.databaseUrl, schema).catch((e) => say(`dropping schema ${schema}: ${(e as Error).message}`));
        const n = await deleteKeys(o.redisUrl, prefix).catch((e) => (say(`deleting Redis keys ${prefix}*: ${(e as Error).message}`), 0));
        say(`cleaned up: schema ${schema} dropped, ${n} Redis keys under ${prefix} deleted`);
      }
    })());
  onInterrupt(nodes, cleanup, say);

  try {
    await checkServices(o.databaseUrl, o.redisUrl);
    const masterKey = kept?.masterKey ?? randomBytes(32).toString('hex');
    const ids = [...PAIR_IDS];
    schemaMayExist = true;
    const ports = await startPair(
      {
        root,
        mode: o.server,
        databaseUrl: o.databaseUrl,
        redisUrl: o.redisUrl,
        schema,
        prefix,
        masterKey,
        nodeFlags: o.nodeFlags,
        profileDir: o.profile ? profileDir : undefined,
        logFile: (id) => path.join(outDir, `node-${id}-${runTag}.log`),
        // pg takes application_name from PGAPPNAME: how the sampler finds this run's connections.
        env: (id) => ({ PGAPPNAME: `parley-bench-${runTag}-${id}` }),
        readyTimeoutMs: READY_TIMEOUT_MS,
        say,
      },
      nodes,
    );

    const sockets = o.users + o.senders + 64;
    for (const p of ports) clients.push(new NodeClient('127.0.0.1', p, sockets));
    const w = new Workload(clients, {
      users: o.users,
      wait: o.wait,
      textBytes: o.textBytes,
      requestTimeoutMs: 30_000,
      runTag: `m${runTag}`,
      password: `bench-${dataTag}`,
      log: say,
      mode: o.anyone ? 'anyone' : o.partners > 0 ? 'partners' : 'pairs',
      partners: o.partners,
    });

    const setupStart = performance.now();
    if (kept) w.adopt(kept.users);
    else {
      await w.register(o.setupConcurrency);
      if (o.partners > 0) await w.openPartners(o.partners, o.setupConcurrency);
      else if (!o.anyone) await w.pair(o.setupConcurrency);
    }
    if (o.keep) {
      const data: KeptData = { dataTag, masterKey, users: w.users.map((u) => ({ name: u.name, token: u.token, conversation: u.conversation })) };
      writeFileSync(keptFile, JSON.stringify(data));
    }
    const setupMs = performance.now() - setupStart;
    say(`setup: ${o.users} users and ${o.anyone ? 0 : o.partners > 0 ? w.opened : o.users / 2} conversations in ${(setupMs / 1000).toFixed(1)} s`);
    const openedBefore = w.opened;

    // Memory with nothing parked, then with half the polls parked, then all, each after the same
    // idle time. idle→all is the issue's figure; half→all is the marginal cost of one more parked
    // poll, free of one-off costs (code warmed up by the first polls, scrypt buffers from the set-up
    // that glibc returns to the kernel whenever it likes).
    await sleep(o.idle * 1000);
    const rssIdle = nodes.map((n) => rssBytes(n.child.pid!));
    const readParked = async () => {
      const settled = await w.settle(SETTLE_QUIET_MS, SETTLE_TIMEOUT_MS);
      await sleep(o.idle * 1000);
      const state = w.parkedState();
      if (state.youngestMs < o.idle * 1000) say(`warning: a poll was answered during the memory reading (youngest ${round(state.youngestMs, 0)} ms)`);
      return { settled, perNode: state.perNode, rss: nodes.map((n) => rssBytes(n.child.pid!)) };
    };
    w.startPolling((u) => u.i < o.users / 2);
    const half = await readParked();
    w.startPolling((u) => u.i >= o.users / 2);
    const full = await readParked();
    const settled = half.settled && full.settled;
    const rssParked = full.rss;
    const parked = { perNode: full.perNode };
    const kib = (bytes: number, count: number) => (count > 0 ? round(bytes / 1024 / count, 1) : NaN);
    const memory = ids.map((id, k) => ({
      node: id,
      parked: parked.perNode[k]!,
      rssIdleMiB: round(rssIdle[k]! / 2 ** 20, 1),
      rssHalfMiB: round(half.rss[k]! / 2 ** 20, 1),
      rssParkedMiB: round(rssParked[k]! / 2 ** 20, 1),
      kibPerParked: kib(rssParked[k]! - rssIdle[k]!, parked.perNode[k]!),
      kibPerParkedMarginal: kib(rssParked[k]! - half.rss[k]!, parked.perNode[k]! - half.perNode[k]!),
    }));
    const totalParked = sumOf(parked.perNode);
    const kibPerParked = kib(sumOf(rssParked) - sumOf(rssIdle), totalParked);
    const kibPerParkedMarginal = kib(sumOf(rssParked) - sumOf(half.rss), totalParked - sumOf(half.perNode));
    say(`parked ${totalParked} polls (settled: ${settled}); RSS per parked poll ${kibPerParked} KiB (marginal ${kibPerParkedMarginal} KiB)`);

    // Load: warm-up, then the measured window; CPU snapshots at the window's edges.
    const hrOffsetUs = Number(process.hrtime.bigint() / 1000n) - performance.now() * 1000;
    const start = performance.now();
    const measureFrom = start + o.warmup * 1000;
    const until = measureFrom + o.seconds * 1000;
    let snapFrom: Snapshot | undefined;
    const watch = new PgWatch(o.databaseUrl, `parley-bench-${runTag}-`, schema);
    await watch.open();
    let tablesFrom: Promise<TableCounters> | undefined;
    let pollsFrom = 0;
    let emptyFrom = 0;
    const snapTimer = setTimeout(() => {
      pollsFrom = w.polls;
      emptyFrom = w.emptyPolls;
      tablesFrom = watch.tables();
      void watch.backendPids().then((pids) => (snapFrom = snapshot(nodes, pids)));
      // 100 ms: ~200 samples over 20 s, one cheap query each.
      void tablesFrom.then(() => watch.start(100));
    }, measureFrom - start);
    say(`sending: ${o.senders} senders${o.rate ? ` at ${o.rate} messages/s` : ''}, ${o.warmup} s warm-up + ${o.seconds} s measured`);
    await w.send(o.senders, until, measureFrom, o.maxMessages, o.rate || undefined);
    clearTimeout(snapTimer);
    const pollsInWindow = w.polls - pollsFrom;
    const emptyInWindow = w.emptyPolls - emptyFrom;
    const snapTo = snapshot(nodes, await watch.backendPids());
    snapFrom ??= snapTo;
    const sendEnd = performance.now();
    say(`senders done; draining (up to ${o.drain} s)`);
    const pgActivity: PgActivity = await watch.stop();
    const drainMs = await w.drain(o.drain * 1000);
    // 1.2 s: backends report table counters at most once a second.
    await sleep(1200);
    const tables = diffTables(await (tablesFrom ?? watch.tables()), await watch.tables());
    await watch.close();
    await w.stopPolling(() => clients.forEach((c) => c.close()));

    // Figures.
    const all = [...w.tally.sent.values()];
    const acked = all.filter((r) => r.ackAt !== undefined);
    const measured = acked.filter((r) => r.measured);
    const lost = acked.filter((r) => r.receivedAt === undefined);
    const receivedUnacked = all.filter((r) => r.ackAt === undefined && r.receivedAt !== undefined).length;
    const deliveredMeasured = measured.filter((r) => r.receivedAt !== undefined);
    const e2e = summarise(deliveredMeasured.map((r) => r.receivedAt! - r.t0));
    const sendLat = summarise(measured.map((r) => r.ackAt! - r.t0));
    const withReceipt = measured.filter((r) => r.receiptAt !== undefined);
    const receiptLat = summarise(withReceipt.map((r) => r.receiptAt! - r.t0));
    const cpu = cpuBetween(snapFrom, snapTo, ids);
    const deliveredPerSecond = round(deliveredMeasured.length / o.seconds, 0);
    {
      // Core-ms per delivered message: what each part costs, whatever else the machine was doing.
      const per = (pct: number) => round(((pct / 100) * o.seconds * 1000) / Math.max(1, deliveredMeasured.length), 2);
      cpu.msPerMessage = {
        nodes: per(sumOf(Object.values(cpu.nodesPct))),
        postgresBackends: per(cpu.runBackendsPct),
        redis: per(cpu.servicesPct['redis-server'] ?? 0),
        loadProcess: per(cpu.loadProcessPct),
      };
    }

    // Stop the nodes now so their profiles are written, then read them.
    say('stopping nodes');
    await Promise.all(nodes.map((n) => stopNode(n, STOP_GRACE_MS)));
    const profileWindow = { fromUs: Math.round(hrOffsetUs + measureFrom * 1000), toUs: Math.round(hrOffsetUs + until * 1000) };
    const profiles: Array<{ node: string; file: string; summary: ProfileSummary }> = [];
    if (o.profile) {
      const files = readdirSync(profileDir).filter((f) => f.endsWith('.cpuprofile'));
      for (const n of nodes) {
        const f = files.find((x) => x.includes(`.${n.child.pid}.`));
        if (!f) {
          say(`no CPU profile from node ${n.id} (did it exit on SIGTERM?)`);
          continue;
        }
        const file = path.join(profileDir, f);
        const window = profileWindow;
        profiles.push({ node: n.id, file: path.relative(root, file), summary: summariseProfile(readProfile(file), { window }) });
      }
    }

    const verdict = {
      deliveredPerSecond: deliveredPerSecond >= TARGETS.deliveredPerSecond,
      p99: e2e.p99 < TARGETS.p99Ms,
      lost: lost.length === TARGETS.lost,
      memory: kibPerParked > 0 && kibPerParked < TARGETS.kibPerParked,
    };
    const report = {
      date: new Date().toISOString(),
      commit: gitCommit(root),
      machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, memGiB: round(os.totalmem() / 2 ** 30, 1), node: process.version },
      options: { ...o, databaseUrl: undefined, redisUrl: undefined, profileDir: o.profile ? path.relative(root, profileDir) : undefined },
      setupSeconds: round(setupMs / 1000, 1),
      sent: acked.length,
      sentMeasured: measured.length,
      sentPerSecond: round(measured.length / o.seconds, 0),
      delivered: deliveredMeasured.length,
      deliveredPerSecond,
      lost: lost.length,
      lostSample: lost.slice(0, 5).map((r) => ({ sender: `u${r.sender}`, recipient: `u${r.recipient}`, conversation: r.conversation, seq: r.seq })),
      duplicates: w.tally.duplicates,
      misdelivered: w.tally.misdelivered,
      unknownMessages: w.tally.unknownMessages,
      notAckedButReceived: receivedUnacked,
      latencyMs: { endToEnd: e2e, send: sendLat, receipt: receiptLat },
      receipts: { events: w.tally.receipts, messagesCovered: withReceipt.length, messagesMeasured: measured.length },
      memory: { kibPerParked, kibPerParkedMarginal, perNode: memory, settled },
      cpu,
      postgres: { activity: pgActivity, tablesDuringWindowAndDrain: tables },
      polls: w.polls,
      pollsPerDeliveredMessage: round(pollsInWindow / Math.max(1, deliveredMeasured.length), 2),
      /** Polls answered with events, and sends, per delivered message (the empty answers are the idle cost). */
      answeredPollsPerDeliveredMessage: round((pollsInWindow - emptyInWindow) / Math.max(1, deliveredMeasured.length), 2),
      requestsPerDeliveredMessage: round((pollsInWindow - emptyInWindow + measured.length) / Math.max(1, deliveredMeasured.length), 2),
      events: w.tally.eventCounts,
      eventsMeasured: w.tally.eventCountsMeasured,
      ownEchoes: w.tally.ownEchoes,
      sendRetries: w.sendRetries,
      problems: w.problems,
      drainMs: round(drainMs, 0),
      sendPhaseMs: round(sendEnd - start, 0),
      targets: TARGETS,
      verdict,
      profiles: profiles.map((p) => ({ node: p.node, file: p.file, windowUs: profileWindow, ...p.summary })),
    };
    const outFile = path.join(outDir, `load-${report.date.replace(/[:.]/g, '-')}.json`);
    writeFileSync(outFile, JSON.stringify(report, null, 2));

    const ok = (b: boolean) => (b ? 'met' : 'MISSED');
    const lines = [
      '',
      `Parley load: ${o.users} users (${o.users / 2} per node), ${o.anyone ? `anyone to anyone (${w.opened - openedBefore} conversations opened by first messages)` : o.partners > 0 ? `${o.partners} fixed partners each` : 'fixed pairs'}, ${o.senders} senders${o.rate ? ` offering ${o.rate} messages/s (open loop)` : ' (closed loop)'}, ${o.seconds} s measured after ${o.warmup} s warm-up, server ${o.server}${o.nodeFlags.length ? ` with ${o.nodeFlags.join(' ')}` : ''}${o.profile ? ', PROFILING (slower)' : ''}, commit ${report.commit ?? '?'}`,
      `  sent (201)              ${acked.length} in all, ${measured.length} measured (${report.sentPerSecond}/s)`,
      `  delivered               ${deliveredMeasured.length} measured = ${deliveredPerSecond} messages/s`,
      `  lost                    ${lost.length}   duplicates ${w.tally.duplicates}   misdelivered ${w.tally.misdelivered}   received without a 201 ${receivedUnacked}`,
      `  end-to-end latency      ${fmtLatency(e2e)}`,
      `  send latency (POST)     ${fmtLatency(sendLat)}`,
      `  receipts seen by senders  delivered ${w.tally.receipts['delivered'] ?? 0}, read ${w.tally.receipts['read'] ?? 0} events; ${withReceipt.length}/${measured.length} measured messages covered; send→receipt ${fmtLatency(receiptLat)}`,
      `  RSS per parked poll     ${kibPerParked} KiB idle→all, ${kibPerParkedMarginal} KiB half→all${kibPerParked <= 0 ? ' (negative: set-up memory returned to the kernel in between; noise dominates)' : ''}`,
      `                          ${memory.map((m) => `${m.node}: ${m.parked} parked, ${m.rssIdleMiB} → ${m.rssHalfMiB} → ${m.rssParkedMiB} MiB`).join('; ')}`,
      `  CPU (measured window)   load process ${cpu.loadProcessPct}% of a core; nodes ${Object.entries(cpu.nodesPct).map(([k, v]) => `${k} ${v}%`).join(', ')}; postgres ${cpu.runBackendsPct}% (this run's backends; all postgres processes ${cpu.servicesPct['postgres']}%), redis ${cpu.servicesPct['redis-server']}%, other processes ${cpu.othersPct}%; machine ${cpu.machineBusyPct}% busy of ${cpu.cores} cores`,
      `  CPU per message         ${Object.entries(cpu.msPerMessage).map(([k, v]) => `${k} ${v} ms`).join(', ')} (core-ms per delivered message)`,
      `  postgres connections    ${Object.entries(pgActivity.avgConnectionsByState).map(([k, v]) => `${k} ${v}`).join(', ')} (average over ${pgActivity.samples} samples)`,
      ...pgActivity.topActive.slice(0, 6).map((q) => `      ${(q.share * 100).toFixed(0).padStart(3)}%  ${q.query}`),
      `  rows per sent message   ${Object.entries(tables).filter(([, v]) => v.ins + v.upd + v.del > 0).map(([t, v]) => `${t} +${round(v.ins / Math.max(1, measured.length), 2)} ins ${round(v.upd / Math.max(1, measured.length), 2)} upd`).join(', ')}`,
      `  polls ${w.polls} (${report.pollsPerDeliveredMessage} per delivered message in the window; with events ${report.answeredPollsPerDeliveredMessage}, so ${report.requestsPerDeliveredMessage} requests with the sends), events ${JSON.stringify(w.tally.eventCounts)} (in the window ${JSON.stringify(w.tally.eventCountsMeasured)}), send retries ${w.sendRetries}, drain ${round(drainMs, 0)} ms, setup ${report.setupSeconds} s`,
      `  problems                ${Object.keys(w.problems).length ? JSON.stringify(w.problems) : 'none'}`,
      `  targets                 ≥${TARGETS.deliveredPerSecond}/s ${ok(verdict.deliveredPerSecond)}; p99 <${TARGETS.p99Ms} ms ${ok(verdict.p99)}; 0 lost ${ok(verdict.lost)}; <${TARGETS.kibPerParked} KiB/parked poll ${ok(verdict.memory)}`,
      `  report                  ${path.relative(root, outFile)}`,
    ];
    console.log(lines.join('\n'));
    for (const p of profiles) console.log('\n' + formatSummary(`CPU profile of node ${p.node} (${p.file}), measured window`, p.summary));
    return o.check && !Object.values(verdict).every(Boolean) ? 1 : 0;
  } finally {
    await cleanup();
  }
}

runMain(main, say);
