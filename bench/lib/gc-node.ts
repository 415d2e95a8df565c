/**
 * A Parley node for memory readings: server/main.ts, plus an IPC hook that runs a full garbage
 * collection and answers the JS heap in use. Start with `node --expose-gc --import tsx` and an IPC
 * channel; RSS alone is dominated by collector slack at these sizes.
 */
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc || !process.send) throw new Error('start with --expose-gc and an IPC channel');
process.on('message', (m: unknown) => {
  if (m !== 'heap') return;
  // Several passes: weak references and finalizers free more on the second and third.
  for (let i = 0; i < 3; i++) gc();
  const u = process.memoryUsage();
  process.send!({ heapUsed: u.heapUsed, external: u.external, arrayBuffers: u.arrayBuffers, rss: u.rss });
});
process.channel?.unref();
await import('../../server/main.js');
