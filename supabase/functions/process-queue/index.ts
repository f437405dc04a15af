// process-queue: the edge function the queue webhook wakes. Only a caller holding one of the
// project's secret keys (apikey header) may start it; it then drains the queue through the
// database's public.process_all_pending_orders (where all the matching logic lives), telling
// the database when its drain begins and ends so that wakes are coalesced. No business logic.
import { createAdminClient, verifyAuth } from "@supabase/server/core";

/** The part of a PostgREST error the function logs (never answers). */
export interface RpcError {
  message: string;
  code?: string;
  details?: string | null;
  hint?: string | null;
}

/** The one thing the handler needs from supabase-js: `client.rpc(name, args)`. */
export interface RpcClient {
  rpc(
    fn: string,
    args: Record<string, unknown>,
  ): PromiseLike<{ data: unknown; error: RpcError | null }>;
}

/** What @supabase/server reads from the environment; tests pass their own. */
export type AuthEnv = NonNullable<Parameters<typeof verifyAuth>[1]["env"]>;

export interface Deps {
  /** Key sources for @supabase/server; undefined reads the platform's environment. */
  authEnv?: AuthEnv;
  /** The database client for the secret key that matched (by its name). */
  clientFor: (keyName: string | undefined) => RpcClient;
  /** Wall-clock budget of one request, in ms: no new batch starts once it is spent. */
  budgetMs: number;
  /** p_max_orders of each call. */
  maxOrdersPerCall: number;
  /** p_max_seconds of each call (capped by what is left of the budget). */
  maxSecondsPerCall: number;
  /** Pause before trying again when orders are pending but another worker holds them. */
  busyRetryMs: number;
  /** Access-Control-Allow-Origin; null sends no CORS grant (server-to-server use only). */
  allowedOrigin: string | null;
  /** Milliseconds clock and sleep, injectable so tests never wait. */
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

/** What process_all_pending_orders returns (keys of its jsonb). */
interface BatchResult {
  total_processed: number;
  successful: number;
  failed: number;
  has_more: boolean;
  duration_ms: number;
}

/** Which callers may start a drain: any of the project's secret keys, by any name. */
export const AUTH_MODE = "secret:*";
export const DEFAULT_BUDGET_MS = 25_000;
export const DEFAULT_MAX_ORDERS_PER_CALL = 1000;
export const DEFAULT_MAX_SECONDS_PER_CALL = 5;
export const DEFAULT_BUSY_RETRY_MS = 250;
// A batch shorter than this is not worth starting: the call's own overhead dominates.
const MIN_SECONDS_PER_CALL = 0.1;

function corsHeaders(origin: string | null): Record<string, string> {
  if (origin === null) return {};
  return {
    "Access-Control-Allow-Origin": origin,
    "Access-Control-Allow-Methods": "POST, OPTIONS",
    "Access-Control-Allow-Headers": "authorization, x-client-info, apikey, content-type",
    "Access-Control-Max-Age": "86400",
    "Vary": "Origin",
  };
}

function json(status: number, body: unknown, origin: string | null): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "Content-Type": "application/json", ...corsHeaders(origin) },
  });
}

/** Logs what went wrong for the function logs; the caller gets no details. */
function logError(what: string, error: unknown): void {
  const detail = error instanceof Error
    ? error.stack ?? error.message
    : typeof error === "string"
    ? error
    : JSON.stringify(error);
  console.error(`process-queue: ${what}: ${detail}`);
}

class DrainError extends Error {
  constructor(readonly step: string, readonly detail: unknown) {
    super(`${step} failed`);
  }
}

function asBatchResult(data: unknown): BatchResult {
  const d = data as Partial<BatchResult> | null;
  if (
    d === null || typeof d !== "object" || typeof d.total_processed !== "number" ||
    typeof d.successful !== "number" || typeof d.failed !== "number" ||
    typeof d.has_more !== "boolean"
  ) {
    throw new DrainError("process_all_pending_orders", {
      message: "unexpected result",
      data,
    });
  }
  return d as BatchResult;
}

async function call(client: RpcClient, fn: string, args: Record<string, unknown>) {
  let answer: { data: unknown; error: RpcError | null };
  try {
    answer = await client.rpc(fn, args);
  } catch (e) {
    throw new DrainError(fn, e);
  }
  if (answer.error) throw new DrainError(fn, answer.error);
  return answer.data;
}

/** Authenticates the caller, then drains the queue; answers the summed counts. */
export async function handler(req: Request, deps: Deps): Promise<Response> {
  const origin = deps.allowedOrigin;
  if (req.method === "OPTIONS") {
    return new Response(null, { status: 204, headers: corsHeaders(origin) });
  }
  if (req.method !== "POST") {
    return json(405, { success: false, error: `method ${req.method} not allowed` }, origin);
  }

  const { data: auth, error: authError } = await verifyAuth(req, {
    auth: AUTH_MODE,
    env: deps.authEnv,
  });
  if (authError) {
    logError(`request refused (${authError.code})`, authError.message);
    const refused = authError.status === 401;
    return json(refused ? 401 : 500, {
      success: false,
      error: refused ? "a secret API key is required (apikey header)" : "server misconfigured",
      code: authError.code,
    }, origin);
  }

  const now = deps.now ?? (() => performance.now());
  const sleep = deps.sleep ?? ((ms: number) => new Promise((r) => setTimeout(r, ms)));
  const started = now();
  const totals = { total_processed: 0, successful: 0, failed: 0 };
  let iterations = 0;
  let hasMore = true;
  let stoppedBy: "drained" | "time_budget" = "drained";
  let client: RpcClient | undefined;
  let drainId: unknown = null;

  try {
    client = deps.clientFor(auth.keyName ?? undefined);
    drainId = await call(client, "begin_process_queue_drain", {});
    for (;;) {
      const leftSeconds = (deps.budgetMs - (now() - started)) / 1000;
      if (leftSeconds < MIN_SECONDS_PER_CALL) {
        stoppedBy = "time_budget";
        await call(client, "end_process_queue_drain", {
          p_drain_id: drainId,
          p_stopped_by: "time_budget",
        });
        break;
      }
      const batch = asBatchResult(
        await call(client, "process_all_pending_orders", {
          p_max_orders: deps.maxOrdersPerCall,
          p_max_seconds: Math.min(deps.maxSecondsPerCall, Math.round(leftSeconds * 1000) / 1000),
        }),
      );
      iterations += 1;
      totals.total_processed += batch.total_processed;
      totals.successful += batch.successful;
      totals.failed += batch.failed;
      hasMore = batch.has_more;
      if (hasMore) {
        // Orders left but none taken: another worker holds their tickers. Wait a moment
        // rather than spin on the database, and try again within the budget.
        if (batch.total_processed === 0) await sleep(deps.busyRetryMs);
        continue;
      }
      // The queue looked empty; the database says whether orders arrived meanwhile.
      const goOn = await call(client, "end_process_queue_drain", {
        p_drain_id: drainId,
        p_stopped_by: "drained",
      });
      if (goOn !== true) break;
      hasMore = true;
    }
  } catch (e) {
    logError(
      e instanceof DrainError ? e.message : "unexpected error",
      e instanceof DrainError ? e.detail : e,
    );
    if (client !== undefined && typeof drainId === "string") {
      // Best effort: without it the drain times out in the database instead.
      try {
        await client.rpc("end_process_queue_drain", {
          p_drain_id: drainId,
          p_stopped_by: "failed",
        });
      } catch (e2) {
        logError("end_process_queue_drain after a failure", e2);
      }
    }
    return json(500, {
      success: false,
      error: e instanceof DrainError ? e.message : "internal error",
      ...totals,
      iterations,
      duration_ms: Math.round(now() - started),
    }, origin);
  }

  return json(200, {
    success: true,
    ...totals,
    has_more: hasMore,
    stopped_by: stoppedBy,
    iterations,
    duration_ms: Math.round(now() - started),
  }, origin);
}

function positiveNumber(env: (name: string) => string | undefined, name: string, fallback: number) {
  const raw = env(name);
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) {
    throw new Error(`${name} must be a positive number, got ${JSON.stringify(raw)}`);
  }
  return value;
}

/** Builds the dependencies from the settings in the environment; the keys and the project
 * URL are read by @supabase/server (SUPABASE_URL, SUPABASE_SECRET_KEYS, ...). */
export function depsFromEnv(env: (name: string) => string | undefined, authEnv?: AuthEnv): Deps {
  return {
    authEnv,
    clientFor: (keyName) => createAdminClient({ auth: { keyName }, env: authEnv }),
    budgetMs: positiveNumber(env, "PROCESS_QUEUE_BUDGET_MS", DEFAULT_BUDGET_MS),
    maxOrdersPerCall: Math.floor(
      positiveNumber(env, "PROCESS_QUEUE_MAX_ORDERS", DEFAULT_MAX_ORDERS_PER_CALL),
    ),
    maxSecondsPerCall: positiveNumber(
      env,
      "PROCESS_QUEUE_MAX_SECONDS",
      DEFAULT_MAX_SECONDS_PER_CALL,
    ),
    busyRetryMs: positiveNumber(env, "PROCESS_QUEUE_BUSY_RETRY_MS", DEFAULT_BUSY_RETRY_MS),
    allowedOrigin: env("ALLOWED_ORIGIN") || null,
  };
}

let deps: Deps | null = null;

export default {
  fetch(req: Request): Promise<Response> | Response {
    if (deps === null) {
      try {
        deps = depsFromEnv((name) => Deno.env.get(name));
      } catch (e) {
        // A configuration error answers a JSON 500 (details in the logs), not a crash.
        logError("bad configuration", e);
        return json(500, { success: false, error: "server misconfigured" }, null);
      }
    }
    return handler(req, deps);
  },
} satisfies Deno.ServeDefaultExport;
