// A user's authenticator app in tests (TOTP, otplib): one for every journey that gives one-time codes. The server
// takes a code ±1 step (30 s) from now and each step's code once per user, so `nextCode` gives the code of the next
// step not yet used — the step before now while it is early in this one (so it cannot leave the window on its way),
// else now's, else it waits for the next.
import { generate } from 'otplib';
import type { Agent } from '../../agent/core/agent';

export class AuthenticatorApp {
  private lastStep = -Infinity;
  constructor(readonly secret: string) {}

  /** Set up through an agent, as in Settings: enroll, then confirm with the first code. */
  static async enroll(agent: Agent): Promise<AuthenticatorApp> {
    const app = new AuthenticatorApp((await agent.api.enrollTotp({})).secret);
    await agent.api.confirmTotp({ code: await app.nextCode() });
    return app;
  }

  async nextCode(): Promise<string> {
    for (;;) {
      const seconds = Date.now() / 1000;
      const now = Math.floor(seconds / 30);
      const step = Math.max(this.lastStep + 1, seconds % 30 < 15 ? now - 1 : now);
      if (step <= now + 1) {
        this.lastStep = step;
        return generate({ secret: this.secret, epoch: step * 30 });
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  }

  /** A code the server cannot accept now (another step's, far off the window). */
  async wrongCode(): Promise<string> {
    const now = Math.floor(Date.now() / 30_000);
    const near = await Promise.all([-1, 0, 1].map((d) => generate({ secret: this.secret, epoch: (now + d) * 30 })));
    for (let far = 100; ; far++) {
      const code = await generate({ secret: this.secret, epoch: (now + far) * 30 });
      if (!near.includes(code)) return code;
    }
  }
}
