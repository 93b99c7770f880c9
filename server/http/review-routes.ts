// Break-glass reviews over the /v1 API (lifecycle/reviews.ts): the reviews waiting for me, and recording one.
import { ListReviewsQuery, RecordReviewBody, ReviewList, ReviewResult } from '../../shared/contract/reviews';
import { ok } from '../errors';
import type { Lifecycle } from '../lifecycle/service';
import type { z } from 'zod';
import type { RouteSpec } from './routes';

function route<B extends z.ZodType, Q extends z.ZodType>(spec: RouteSpec<B, Q>): RouteSpec {
  return spec as unknown as RouteSpec;
}

export function reviewRoutes(lifecycle: Lifecycle): RouteSpec[] {
  return [
    route({
      method: 'GET', url: '/v1/reviews', access: 'user', operationId: 'listReviews', summary: 'Break-glass uses I may review (open ones, or all)', tags: ['reviews'],
      query: ListReviewsQuery, response: ReviewList,
      handler: async ({ user, query }) => ok({ reviews: await lifecycle.listReviews(user, query) }),
    }),
    route({
      method: 'POST', url: '/v1/reviews/:id/record', access: 'user', operationId: 'recordReview', summary: 'Record my review of a break-glass use: outcome and note, on the audit chain', tags: ['reviews'],
      body: RecordReviewBody, response: ReviewResult, problems: [403, 404, 409],
      handler: async ({ user, id, body }) => lifecycle.recordReview(user, id, body),
    }),
  ];
}
