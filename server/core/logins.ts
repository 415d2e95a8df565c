import type { Accounts, DeviceInfo, Principal } from './accounts.js';
import { errors } from './errors.js';
import type { Limits } from './limits.js';

/**
 * The one login rule for every door (POST /api/login, BOSH SASL PLAIN): reserve an attempt on
 * the shared counters first, then check the password, then settle the reservation. 429 when the
 * attempt was refused before any password work, 401 when the password was wrong.
 */
export class Logins {
  constructor(private readonly accounts: Accounts, private readonly limits: Limits) {}

  /** The user whose name and password these are, asked from `address`; throws 401 or 429. */
  async verify(rawName: unknown, rawPassword: unknown, address: string): Promise<Principal> {
    const ticket = await this.limits.reserveLogin(rawName, address);
    const user = await this.accounts.check(rawName, rawPassword);
    if (!user) {
      await ticket.failed();
      throw errors.badCredentials();
    }
    await ticket.succeeded();
    return user;
  }

  /** Log in and get a new device token. */
  async login(rawName: unknown, rawPassword: unknown, address: string, device?: DeviceInfo): Promise<{ user: Principal; token: string }> {
    const user = await this.verify(rawName, rawPassword, address);
    return { user, token: await this.accounts.issue(user, device) };
  }
}
