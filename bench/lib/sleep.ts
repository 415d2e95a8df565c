import { setTimeout } from 'node:timers/promises';

/** Wait `ms` milliseconds: pacing, back-off, and time for another process to act. */
export const sleep = (ms: number): Promise<void> => setTimeout(ms);
