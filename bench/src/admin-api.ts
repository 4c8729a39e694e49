import { ADMIN_TOKEN } from '../../e2e/support/coordinator.ts';

/** A REST call to the coordinator with the admin token; its JSON answer, or an error naming the call. */
export async function adminApi(baseUrl: string, method: string, route: string, body?: unknown): Promise<any> {
  const res = await fetch(`${baseUrl}${route}`, {
    method,
    // Fastify refuses a JSON content type with no body (a DELETE): send it only with one.
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`${method} ${route}: ${res.status} ${await res.text()}`);
  return res.json();
}
