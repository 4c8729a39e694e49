import { z } from 'zod';
import { LIMITS } from './limits.ts';

/*
 * Between coordinators of one cluster, over NATS (docs/cluster.md): a REST change sent to one
 * that does not run the job is handed to the one that does, which answers it as its own.
 */

/** Headers a forwarded request keeps: who asks, and what the body is. */
export const FORWARDED_HEADERS = ['authorization', 'content-type'] as const;

export const ForwardedRequest = z.object({
  method: z.enum(['POST', 'DELETE']),
  /** Path and query, as the client sent them. */
  url: z.string().startsWith('/api/jobs/').max(LIMITS.urlChars),
  headers: z.partialRecord(z.enum(FORWARDED_HEADERS), z.string().max(LIMITS.urlChars)),
  body: z.string().max(LIMITS.requestBytes),
});
export type ForwardedRequest = z.infer<typeof ForwardedRequest>;

export const ForwardedReply = z.object({
  status: z.number().int().min(100).max(599),
  contentType: z.string().max(LIMITS.idChars * 2),
  body: z.string().max(LIMITS.requestBytes),
});
export type ForwardedReply = z.infer<typeof ForwardedReply>;
