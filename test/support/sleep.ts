import { setTimeout } from 'node:timers/promises';

/** Wait `ms` milliseconds: only for what no event announces (a timer elsewhere, another process). */
export const sleep = (ms: number): Promise<void> => setTimeout(ms);
