// What the bastion routes' schemas share: a recorded sshd pid, a client's address, the error body and its 503.
import { isIP } from 'node:net';
import { z } from 'zod';

export const Pid = z.number().int().min(2).max(2 ** 31);
export const ClientAddress = z.string().max(64).refine((a) => isIP(a) !== 0, 'an IP address').describe("the SSH client's address, when the key program knows it");
export const BastionError = z.object({ code: z.string(), message: z.string() });

/** The OpenAPI tags of every bastion route. */
export const tags = ['bastion'];
/** The answer of a bastion route whose storage failed. */
export const unavailable = { description: 'Storage is unavailable; try again', type: 'application/json', schema: BastionError };
