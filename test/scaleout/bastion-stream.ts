// A bastion's live feed of grant ends from one grant-server instance (what the kill companion reads), for tests.
import { expect } from 'vitest';
import type { BastionEndedEvent } from '../../server/bastion/end-routes';
import { BASTION_TOKEN } from '../../dev/grant-server';
import { until } from '../server/helpers';

export async function bastionStream(url: string): Promise<{ ended: () => BastionEndedEvent[]; close: () => void }> {
  const controller = new AbortController();
  const response = await fetch(`${url}/v1/bastion/events`, { headers: { authorization: `Bearer ${BASTION_TOKEN}` }, signal: controller.signal });
  expect(response.status).toBe(200);
  let text = '';
  void (async () => {
    try {
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) text += Buffer.from(chunk).toString();
    } catch {
      // aborted
    }
  })();
  await until('the bastion stream to open', () => text.includes(': connected'));
  return {
    ended: () => text.split('\n\n').filter((block) => block.startsWith('event: ended\n'))
      .map((block) => JSON.parse(block.split('\n').find((line) => line.startsWith('data: '))!.slice('data: '.length)) as BastionEndedEvent),
    close: () => controller.abort(),
  };
}
