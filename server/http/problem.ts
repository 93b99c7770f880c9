// How the HTTP layer answers a DomainError (RFC 9457 problem+json), and how a zod failure names its fields.
import type { FastifyReply } from 'fastify';
import type { z } from 'zod';
import { problemBody, type DomainError } from '../errors';

export function sendProblem(reply: FastifyReply, error: Pick<DomainError, 'status' | 'code' | 'message' | 'errors' | 'extra'>): FastifyReply {
  return reply.code(error.status).type('application/problem+json').send(problemBody(error));
}

export function zodErrors(error: z.ZodError): { path: string; message: string }[] {
  return error.issues.map((issue) => ({
    path: issue.path.map(String).join('.') || (issue.code === 'unrecognized_keys' ? issue.keys.join(',') : '(body)'),
    message: issue.code === 'unrecognized_keys' ? `unknown field(s): ${issue.keys.join(', ')}` : issue.message,
  }));
}
