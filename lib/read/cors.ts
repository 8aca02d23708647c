// Cross-origin reads of the API (a Grafana panel, a page on another host): off unless CORS_ORIGIN
// names the origins allowed. The API is read-only, so only GET and HEAD are ever allowed.
import type { IncomingMessage } from 'node:http';

export type CorsAnswer =
  | { kind: 'off' }
  | { kind: 'headers'; headers: Record<string, string> }
  | { kind: 'preflight'; status: 204 | 403; headers: Record<string, string>; error?: string };

export class Cors {
  constructor(private readonly origins: readonly string[]) {}

  get enabled(): boolean {
    return this.origins.length > 0;
  }

  /** The CORS part of the answer to `req`: nothing when off, headers to add, or a whole preflight answer. */
  answer(req: IncomingMessage): CorsAnswer {
    if (!this.enabled) return { kind: 'off' };
    const origin = req.headers.origin;
    const allowed = origin !== undefined && (this.origins.includes('*') || this.origins.includes(origin));
    const headers: Record<string, string> = { Vary: 'Origin' };
    if (allowed) {
      headers['Access-Control-Allow-Origin'] = this.origins.includes('*') ? '*' : origin;
      headers['Access-Control-Expose-Headers'] = 'X-Request-Id, Retry-After';
    }
    if (req.method !== 'OPTIONS' || !req.headers['access-control-request-method']) return { kind: 'headers', headers };
    if (!allowed) {
      const error = `origin ${JSON.stringify(origin ?? null)} may not read this API: CORS_ORIGIN allows ${this.origins.join(', ')}`;
      return { kind: 'preflight', status: 403, headers, error };
    }
    const asked = req.headers['access-control-request-headers'];
    return {
      kind: 'preflight',
      status: 204,
      headers: {
        ...headers,
        'Access-Control-Allow-Methods': 'GET, HEAD',
        ...(asked ? { 'Access-Control-Allow-Headers': asked } : {}),
        'Access-Control-Max-Age': '600',
      },
    };
  }
}
