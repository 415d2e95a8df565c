import os from 'node:os';
import type { Ledger, Fault } from './chaos-users.js';
import type { Junk } from './malformed.js';

/** The chaos run's figures: computed from the clients' ledger, checked against the targets, printed. */

/** The issue's targets. */
export const TARGETS = {
  nodeKillResumeMs: 2_000,
  /**
   * A BOSH session whose lock the killed node held waits for the lock to expire (LOCK_TTL_MS, 3 s,
   * server/transports/bosh/sessions.ts) before any node can continue it; then one retry.
   */
  boshNodeKillResumeMs: 4_000,
  redisResumeMs: 5_000,
  pgAnswerMs: 10_000,
  pgSucceedMs: 10_000,
};
/** The figures of a run, as printed and as written with --json. */
export type Report = ReturnType<typeof report>;

/** The figures of a run: totals from the ledger, each fault's cost, and the junk's answers outside the fault windows (a fault to 5 s after its service returned). */
export function report(o: { durationS: number; users: number; bosh: number } & Record<string, unknown>, l: Ledger, faults: Fault[], junk: Junk[], extra: { storedTwice: number; stored: number; alive: number; unexpectedExits: number }) {
  const windows = faults.map((f) => ({ from: f.start - 200, to: f.back + 5_000 }));
  const inFault = (t: number) => windows.some((w) => t >= w.from && t <= w.to);
  const faultFigures = faults.map((f) => l.recovery(f));
  const junkOutside = junk.filter((j) => !inFault(j.at));
  const classes: Record<string, number> = {};
  for (const j of junkOutside) {
    const c = j.status === null ? (j.cut ? 'cut by client' : 'no answer') : `${Math.floor(j.status / 100)}xx`;
    classes[c] = (classes[c] ?? 0) + 1;
  }
  const fiveHundreds: Record<string, number> = {};
  for (const j of junkOutside) if (j.status !== null && j.status >= 500) fiveHundreds[`${j.kind} ${j.status}`] = (fiveHundreds[`${j.kind} ${j.status}`] ?? 0) + 1;
  const unanswered = junkOutside.filter((j) => j.status === null && !j.cut);
  const noAnswer = unanswered.length;
  // Which kinds got something other than a 4xx (a 2xx can be right: a form text `%zz` is a text).
  const notRefused: Record<string, number> = {};
  for (const j of junkOutside) {
    if (j.cut || (j.status !== null && j.status >= 400 && j.status < 500)) continue;
    const k = `${j.kind} → ${j.status ?? 'no answer'}`;
    notRefused[k] = (notRefused[k] ?? 0) + 1;
  }
  return {
    options: { ...o, json: undefined },
    cpus: os.cpus().length,
    load: os.loadavg().map((x) => Math.round(x * 100) / 100),
    ...l.totals(inFault),
    storedTwice: extra.storedTwice,
    stored: extra.stored,
    faults: faultFigures,
    malformed: { sent: junk.length, outsideFaults: junkOutside.length, classes, fiveHundreds, noAnswer, notRefused, unanswered: unanswered.slice(0, 5).map((j) => j.sample) },
    nodesAlive: extra.alive,
    unexpectedExits: extra.unexpectedExits,
  };
}

/** Which targets a report misses (empty: all met). */
export function missed(r: Report): string[] {
  const out: string[] = [];
  if (r.lost) out.push(`${r.lost} lost`);
  if (r.shownTwice) out.push(`${r.shownTwice} shown twice`);
  if (r.storedTwice) out.push(`${r.storedTwice} stored twice`);
  const fives = Object.entries(r.malformed.classes).filter(([c]) => c === '5xx').reduce((n, [, v]) => n + v, 0);
  if (fives) out.push(`${fives} malformed requests answered >= 500 outside faults: ${JSON.stringify(r.malformed.fiveHundreds)}`);
  if (r.malformed.noAnswer) out.push(`${r.malformed.noAnswer} malformed requests never answered`);
  for (const f of r.faults) {
    const limit = f.name.startsWith('kill') ? TARGETS.nodeKillResumeMs : f.name.startsWith('Redis') ? TARGETS.redisResumeMs : undefined;
    const boshLimit = f.name.startsWith('kill') ? TARGETS.boshNodeKillResumeMs : limit;
    if (limit !== undefined && !(f.receiveResumeMs <= limit)) out.push(`${f.name}: receiving resumed after ${f.receiveResumeMs} ms (target ${limit})`);
    if (boshLimit !== undefined && !(f.boshReceiveResumeMs <= boshLimit)) out.push(`${f.name}: BOSH receiving resumed after ${f.boshReceiveResumeMs} ms (target ${boshLimit})`);
    if (f.name.startsWith('PostgreSQL')) {
      if (!(f.slowestSendAnswerMs <= TARGETS.pgAnswerMs)) out.push(`${f.name}: a send took ${f.slowestSendAnswerMs} ms to be answered (target ${TARGETS.pgAnswerMs})`);
      if (!(f.sendResumeMs <= TARGETS.pgSucceedMs)) out.push(`${f.name}: sends succeeded ${f.sendResumeMs} ms after it returned (target ${TARGETS.pgSucceedMs})`);
    }
  }
  if (r.nodesAlive !== 3) out.push(`${3 - r.nodesAlive} node(s) dead at the end`);
  if (r.unexpectedExits) out.push(`${r.unexpectedExits} unexpected node exit(s)`);
  return out;
}

const fmt = (x: number) => (Number.isFinite(x) ? `${Math.round(x)} ms` : 'never');

export function print(r: Report): void {
  const rows: Array<[string, string]> = [
    ['messages acknowledged', `${r.acknowledged} (${r.boshAcknowledged} over BOSH)`],
    ['messages received (distinct)', String(r.received)],
    ['lost', String(r.lost)],
    ['shown twice', String(r.shownTwice)],
    ['stored twice (same client_id, in the DB)', `${r.storedTwice} (${r.stored} stored)`],
    ['redelivered, dropped by id', String(r.redelivered)],
    ['send attempts retried', String(r.retries)],
    ['delivery p50 / p99 outside faults', `${fmt(r.outside.p50)} / ${fmt(r.outside.p99)} (${r.outside.count} messages, ${r.rate.toFixed(1)} msg/s)`],
  ];
  for (const f of r.faults) {
    rows.push([`${f.name}: receiving again (long-poll / BOSH)`, `${fmt(f.receiveResumeMs)} / ${fmt(f.boshReceiveResumeMs)}${f.rejoinedMs !== undefined ? `; node ready again after ${fmt(f.rejoinedMs)}` : ''}`]);
    rows.push([`  sends: slowest answer / first success after`, `${fmt(f.slowestSendAnswerMs)} / ${fmt(f.sendResumeMs)}; statuses ${JSON.stringify(f.sendStatuses)}`]);
    rows.push([`  polls failed / BOSH sessions lost`, `${f.pollFailures} / ${f.boshSessionsLost}`]);
  }
  rows.push(['malformed requests sent (outside faults)', `${r.malformed.sent} (${r.malformed.outsideFaults})`]);
  rows.push(['  their status classes', JSON.stringify(r.malformed.classes)]);
  if (Object.keys(r.malformed.notRefused).length) rows.push(['  not answered 4xx, by kind', JSON.stringify(r.malformed.notRefused)]);
  rows.push(['BOSH sessions lost (all run) / reconnects', `${r.boshSessionsLost} / ${r.boshReconnects}`]);
  rows.push(['nodes alive at the end', `${r.nodesAlive} of 3 (unexpected exits: ${r.unexpectedExits})`]);
  rows.push(['machine', `${r.cpus} CPUs, load ${r.load.join(' ')} (shared with other work)`]);
  const w = Math.max(...rows.map(([k]) => k.length));
  console.log(`\nParley chaos run: ${r.options.durationS} s, ${r.options.users} long-poll users + ${r.options.bosh} BOSH pairs\n`);
  for (const [k, v] of rows) console.log(`${k.padEnd(w)}  ${v}`);
  if (r.lostIds.length) console.log(`\nlost: ${r.lostIds.join('; ')}`);
  if (r.twiceIds.length) console.log(`shown twice: ${r.twiceIds.join('; ')}`);
  if (Object.keys(r.refused).length) console.log(`failed requests by status: ${JSON.stringify(r.refused)}`);
  const m = missed(r);
  console.log(m.length ? `\nTARGETS MISSED:\n- ${m.join('\n- ')}` : '\nall targets met');
}

