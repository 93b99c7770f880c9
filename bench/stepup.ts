// Server-side step-up verification cost: StepUpService.verify for a WebAuthn assertion (ES256, made by a software
// authenticator here so the bench needs no browser) and for a TOTP code, each including the store's atomic
// writes on in-memory SQLite. Challenge issue and assertion signing are outside the timed section.
import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { isoCBOR } from '@simplewebauthn/server/helpers';
import { generate } from 'otplib';
import { makeService, TestClock } from '../dev/stepup';

const ORIGIN = 'http://localhost:3000';

function p50(samples: number[]): number {
  const s = [...samples].sort((a, b) => a - b);
  return Number((s[Math.floor(s.length / 2)] ?? 0).toFixed(3));
}

/** A minimal CTAP2-like software authenticator with one ES256 credential. */
function softwareAuthenticator(rpId: string) {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = publicKey.export({ format: 'jwk' });
  const cose = isoCBOR.encode(new Map<number, number | Uint8Array>([
    [1, 2], [3, -7], [-1, 1],
    [-2, new Uint8Array(Buffer.from(jwk.x!, 'base64url'))],
    [-3, new Uint8Array(Buffer.from(jwk.y!, 'base64url'))],
  ]));
  const id = Buffer.from('bench-credential-0001').toString('base64url');
  let counter = 0;
  return {
    id,
    publicKey: new Uint8Array(cose),
    assert(challenge: string, origin: string): Record<string, unknown> {
      counter += 1;
      const authData = Buffer.alloc(37);
      createHash('sha256').update(rpId).digest().copy(authData, 0);
      authData[32] = 0x05; // UP | UV
      authData.writeUInt32BE(counter, 33);
      const clientDataJSON = Buffer.from(JSON.stringify({ type: 'webauthn.get', challenge, origin, crossOrigin: false }));
      const signature = sign('sha256', Buffer.concat([authData, createHash('sha256').update(clientDataJSON).digest()]), privateKey);
      return {
        id, rawId: id, type: 'public-key', clientExtensionResults: {},
        response: { authenticatorData: authData.toString('base64url'), clientDataJSON: clientDataJSON.toString('base64url'), signature: signature.toString('base64url') },
      };
    },
  };
}

export default async function (opts: { quick: boolean }): Promise<Record<string, number | string>> {
  const n = opts.quick ? 40 : 400;
  const clock = new TestClock(Date.parse('2030-01-01T00:00:10Z'));
  const { service, store } = await makeService({ clock, config: { origins: [ORIGIN] } });
  const user = 'bench-user';
  const action = { kind: 'request' as const, requestId: 'bench' };

  // WebAuthn
  const auth = softwareAuthenticator('localhost');
  await store.addCredential({ id: auth.id, userId: user, publicKey: auth.publicKey, counter: 0, transports: ['internal'], label: 'bench', createdAt: clock.now() });
  const webauthn: number[] = [];
  for (let i = 0; i < n + 5; i++) {
    const issued = await service.issueChallenge({ userId: user, actionHash: `h${i}`, methods: ['webauthn'], userVerification: true });
    if (!issued.ok || !issued.challenge.webauthn) throw new Error('no challenge');
    const response = auth.assert(issued.challenge.webauthn.challenge, ORIGIN);
    const t0 = performance.now();
    const r = await service.verify({ userId: user, action, actionHash: `h${i}`, methods: ['webauthn'], userVerification: true, proof: { method: 'webauthn', challengeId: issued.challenge.challengeId, response } });
    const dt = performance.now() - t0;
    if (!r.ok) throw new Error(`webauthn verify failed: ${r.code} ${r.message}`);
    if (i >= 5) webauthn.push(dt); // the first few warm up JIT and caches
  }

  // TOTP
  const { secret } = await service.enrollTotp({ sub: user });
  if (!(await service.confirmTotp(user, await generate({ secret, epoch: Math.floor(clock.t / 1000) }))).ok) throw new Error('totp confirm failed');
  const totp: number[] = [];
  for (let i = 0; i < n + 5; i++) {
    clock.advance(30_000); // each step is usable once
    const issued = await service.issueChallenge({ userId: user, actionHash: `t${i}`, methods: ['totp'], userVerification: true });
    if (!issued.ok) throw new Error('no challenge');
    const code = await generate({ secret, epoch: Math.floor(clock.t / 1000) });
    const t0 = performance.now();
    const r = await service.verify({ userId: user, action, actionHash: `t${i}`, methods: ['totp'], userVerification: true, proof: { method: 'totp', challengeId: issued.challenge.challengeId, code } });
    const dt = performance.now() - t0;
    if (!r.ok) throw new Error(`totp verify failed: ${r.code} ${r.message}`);
    if (i >= 5) totp.push(dt);
  }

  return { webauthn_verify_ms_p50: p50(webauthn), totp_verify_ms_p50: p50(totp), samples: n };
}
