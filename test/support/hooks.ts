import { closeSharedEmbedded } from './embedded.js';

/** Mocha root hooks: close what the whole run shares. */
export const mochaHooks = {
  async afterAll(this: Mocha.Context) {
    this.timeout(30_000);
    await closeSharedEmbedded();
  },
};
