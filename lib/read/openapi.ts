// The read API's contract: an OpenAPI 3.1 document, served at /api/openapi.json. The tests check
// every route's answers against it (test/unit/read/openapi.test.ts), so it cannot drift from the code.
import { VERSION } from '../shared/version.js';
import { MAX_POINTS } from './influencer.js';
import { MAX_LIMIT, MAX_RANGE_DAYS, TIME_PATTERN } from './params.js';

type Schema = Record<string, unknown>;

const ref = (name: string): Schema => ({ $ref: `#/components/schemas/${name}` });
const nullable = (type: string): Schema => ({ type: [type, 'null'] });
const json = (description: string, schema: Schema): Schema => ({
  description,
  content: { 'application/json': { schema } },
});
const text = (description: string): Schema => ({
  description,
  content: { 'text/plain': { schema: { type: 'string' } } },
});
const error = (description: string): Schema => json(description, ref('Error'));
const unavailable = error(
  'Redis or MongoDB unreachable, or too many requests at once (then with Retry-After: 1); the error text names ' +
    'the request id under which the server logged the cause, never the cause itself',
);
const badInput = error('bad input: the error names the parameter, the value and what is allowed');

const pkParam = {
  name: 'pk',
  in: 'path',
  required: true,
  description: 'influencer pk, within the PK_MIN..PK_MAX the cluster tracks',
  schema: { type: 'string', pattern: '^\\d{1,16}$' },
};
const timeParam = (name: string, meaning: string): Schema => ({
  name,
  in: 'query',
  required: false,
  description:
    `${meaning}: an ISO 8601 date-time with an offset (2026-11-27T10:00Z, 2026-11-27T11:00+01:00) or epoch ` +
    'milliseconds (12 or more digits); a time without an offset, a year or epoch seconds is a 400',
  schema: { type: 'string', pattern: TIME_PATTERN },
});

const count = { type: 'integer', minimum: 0 };
const time = { type: 'string', format: 'date-time' };

const schemas: Record<string, Schema> = {
  Error: {
    type: 'object',
    required: ['error'],
    additionalProperties: false,
    properties: {
      error: { type: 'string', description: 'one line saying what is wrong' },
      requestId: { type: 'string', description: 'on 5xx: the id under which the server logged the cause' },
    },
  },
  Influencer: {
    type: 'object',
    required: [
      'pk',
      'username',
      'followerCount',
      'followingCount',
      'followerRatio',
      'averageFollowers',
      'minFollowers',
      'maxFollowers',
      'samples',
      'lastUpdated',
      'rank',
      'growth',
      'previousAt',
      'suspicious',
      'suspiciousAt',
      'totals',
    ],
    additionalProperties: false,
    properties: {
      pk: { type: 'integer' },
      username: { type: 'string' },
      followerCount: count,
      followingCount: count,
      followerRatio: { ...nullable('number'), description: 'followerCount / followingCount; null when 0 followed' },
      averageFollowers: { type: 'number', description: 'mean followerCount over every stored sample' },
      minFollowers: count,
      maxFollowers: count,
      samples: { type: 'integer', minimum: 1 },
      lastUpdated: time,
      rank: {
        ...nullable('integer'),
        description:
          'by followerCount as of the latest ranking snapshot, ties share a rank; null while rebuilt or before a snapshot holds the pk',
      },
      growth: { ...nullable('integer'), description: 'latest followerCount minus the one before it' },
      previousAt: { type: ['string', 'null'], format: 'date-time' },
      suspicious: nullable('boolean'),
      suspiciousAt: { type: ['string', 'null'], format: 'date-time' },
      totals: ref('TotalsState'),
      note: { type: 'string' },
    },
  },
  TotalsState: {
    type: 'string',
    enum: ['ready', 'rebuilding', 'missing'],
    description: 'whether the running totals in Redis can be trusted (rank and averages are partial otherwise)',
  },
  Point: {
    type: 'object',
    description:
      'the points of one step (an interval, or a bucket of them): the last counts, their ratio, and the ' +
      'min, max and mean followerCount over the step (equal to followerCount for a single sample)',
    required: [
      'at',
      'followerCount',
      'followingCount',
      'followerRatio',
      'minFollowers',
      'maxFollowers',
      'meanFollowers',
      'samples',
    ],
    additionalProperties: false,
    properties: {
      at: { ...time, description: 'start of the step' },
      followerCount: count,
      followingCount: count,
      followerRatio: nullable('number'),
      minFollowers: count,
      maxFollowers: count,
      meanFollowers: { type: 'number' },
      samples: { type: 'integer', minimum: 1 },
    },
  },
  Timeline: {
    type: 'object',
    required: ['pk', 'from', 'to', 'resolution', 'stepMs', 'bucketMs', 'points'],
    additionalProperties: false,
    properties: {
      pk: { type: 'integer' },
      from: time,
      to: time,
      resolution: {
        type: 'string',
        enum: ['interval', 'bucket'],
        description: `interval: one point per interval, up to a day and ${MAX_POINTS} intervals; bucket: one per bucket`,
      },
      stepMs: { type: 'integer', description: 'the time one point covers: INTERVAL_MS or BUCKET_MS' },
      bucketMs: { type: 'integer' },
      points: { type: 'array', items: ref('Point') },
    },
  },
  TopList: {
    type: 'object',
    required: ['sort', 'limit', 'influencers'],
    additionalProperties: false,
    properties: {
      sort: { type: 'string', enum: ['followers', 'growth'] },
      limit: { type: 'integer', minimum: 1, maximum: MAX_LIMIT },
      influencers: { type: 'array', items: ref('TopEntry') },
    },
  },
  TopEntry: {
    type: 'object',
    required: ['pk', 'username', 'followerCount', 'followingCount', 'followerRatio', 'growth'],
    oneOf: [{ required: ['rank'] }, { required: ['position'] }],
    additionalProperties: false,
    properties: {
      rank: { type: 'integer', minimum: 1, description: 'sort=followers: ties share a rank' },
      position: { type: 'integer', minimum: 1, description: 'sort=growth: the place in the list' },
      pk: { type: 'integer' },
      username: { type: 'string' },
      followerCount: nullable('integer'),
      followingCount: nullable('integer'),
      followerRatio: nullable('number'),
      growth: nullable('integer'),
    },
  },
  Universe: {
    type: 'object',
    required: ['pkMin', 'pkMax', 'size'],
    additionalProperties: false,
    properties: { pkMin: { type: 'integer' }, pkMax: { type: 'integer' }, size: { type: 'integer' } },
  },
  Stats: {
    type: 'object',
    required: ['cluster', 'influencers', 'averageFollowers', 'rankedAt', 'totals', 'universe'],
    additionalProperties: false,
    properties: {
      cluster: { type: 'string' },
      influencers: { ...count, description: 'influencers with a stored sample, as of rankedAt' },
      averageFollowers: { ...nullable('number'), description: 'mean of their latest followerCount, as of rankedAt' },
      rankedAt: {
        ...time,
        type: ['string', 'null'],
        description:
          'the interval the counts, ranks and top lists are as of (their per-slice snapshots, taken once an interval); null before the first',
      },
      totals: ref('TotalsState'),
      universe: ref('Universe'),
    },
  },
  Cluster: {
    type: 'object',
    description: 'the data of `influencer-node status --json`',
    required: ['cluster', 'at', 'universe', 'members', 'summary'],
    properties: {
      cluster: { type: 'string' },
      at: time,
      universe: ref('Universe'),
      members: {
        type: 'array',
        items: {
          type: 'object',
          required: ['id', 'readable'],
          properties: {
            id: { type: 'string' },
            readable: { type: 'boolean' },
            error: { type: 'string' },
            state: { type: 'string', enum: ['joining', 'active', 'leaving'] },
            healthy: { type: 'boolean' },
            sharePct: { type: 'number' },
            stats: { type: 'object' },
          },
        },
      },
      summary: { type: 'object', required: ['members', 'active'] },
    },
  },
};

const get = (summary: string, responses: Record<string, Schema>, parameters: Schema[] = []): Schema => ({
  get: { summary, parameters, responses },
});

/** The OpenAPI 3.1 document of the read API and of serve's operational routes. */
export function openApiDocument(): Schema {
  return {
    openapi: '3.1.0',
    info: {
      title: 'influencer-node read API',
      version: VERSION,
      description:
        'Read-only JSON over HTTP from `influencer-node serve`. Every answer is Cache-Control: no-store. The ' +
        'routes without /v1 (/api/influencers/{pk}, ...) are aliases giving the same answers. CORS is off ' +
        'unless CORS_ORIGIN names the origins allowed.',
      license: { name: 'MIT', identifier: 'MIT' },
    },
    paths: {
      '/api/v1/influencers/{pk}': get(
        "One influencer's latest figures",
        {
          200: json('latest counts, ratio, average, min, max, rank, growth, suspicious flag', ref('Influencer')),
          400: badInput,
          404: error('no sample stored for this pk yet'),
          503: unavailable,
        },
        [pkParam],
      ),
      '/api/v1/influencers/{pk}/timeline': get(
        "One influencer's timeline in [from, to)",
        {
          200: json(
            `one point per interval up to a day, else one per bucket; at most ${MAX_RANGE_DAYS} days`,
            ref('Timeline'),
          ),
          400: badInput,
          404: error('no sample stored for this pk yet'),
          503: unavailable,
        },
        [pkParam, timeParam('from', 'start (default: an hour before to)'), timeParam('to', 'end (default: now)')],
      ),
      '/api/v1/influencers': get(
        'Top influencers by followers or by growth',
        { 200: json('the top list', ref('TopList')), 400: badInput, 503: unavailable },
        [
          {
            name: 'sort',
            in: 'query',
            required: false,
            schema: { type: 'string', enum: ['followers', 'growth'], default: 'followers' },
          },
          {
            name: 'limit',
            in: 'query',
            required: false,
            schema: { type: 'integer', minimum: 1, maximum: MAX_LIMIT, default: 10 },
          },
        ],
      ),
      '/api/v1/stats': get('Tracked influencers and their average follower count', {
        200: json('the figures', ref('Stats')),
        503: unavailable,
      }),
      '/api/v1/cluster': get('The cluster as `status --json` shows it', {
        200: json('members and ring', ref('Cluster')),
        503: unavailable,
      }),
      '/api/openapi.json': get('This document', {
        200: json('the OpenAPI 3.1 document', { type: 'object', required: ['openapi', 'paths'] }),
      }),
      '/healthz': get('Liveness: the process answers', { 200: text('ok') }),
      '/readyz': get('Readiness: Redis and MongoDB reachable', {
        200: text('ready'),
        503: text('not ready: the reasons'),
      }),
      '/metrics': get('Prometheus metrics of this serve process', { 200: text('Prometheus text format 0.0.4') }),
    },
    components: { schemas },
  };
}
