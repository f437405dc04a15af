// process-queue: the edge function the queue webhook wakes. It only calls the database's
// public.process_all_pending_orders (where all the matching logic lives) until nothing is
// pending or its time budget is spent, and answers a JSON summary. No business logic here.
import { createClient } from "@supabase/supabase-js";

/** The part of a PostgREST error the function reports. */
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

export interface Deps {
  client: RpcClient;
  /** Wall-clock budget of one request, in ms: no new batch starts once it is spent. */
  budgetMs: number;
  /** p_max_orders of each call. */
  maxOrdersPerCall: number;
  /** p_max_seconds of each call (capped by what is left of the budget). */
  maxSecondsPerCall: number;
  /** Access-Control-Allow-Origin; null sends no CORS grant (server-to-server use only). */
  allowedOrigin: string | null;
  /** Milliseconds clock, injectable so tests never wait. */
  now?: () => number;
}

/** What process_all_pending_orders returns (keys of its jsonb). */
interface BatchResult {
  total_processed: number;
  successful: number;
  failed: number;
  has_more: boolean;
  duration_ms: number;
}

export const DEFAULT_BUDGET_MS = 25_000;
export const DEFAULT_MAX_ORDERS_PER_CALL = 1000;
export const DEFAULT_MAX_SECONDS_PER_CALL = 5;
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

function asBatchResult(data: unknown): BatchResult {
  const d = data as Partial<BatchResult> | null;
  if (
    d === null || typeof d !== "object" || typeof d.total_processed !== "number" ||
    typeof d.successful !== "number" || typeof d.failed !== "number" ||
    typeof d.has_more !== "boolean"
  ) {
    throw new Error(`unexpected result from process_all_pending_orders: ${JSON.stringify(data)}`);
  }
  return d as BatchResult;
}

/** Drains the queue through the RPC; answers the summed counts. */
export async function handler(req: Request, deps: Deps): Promise<Response> {
  const origin = deps.allowedOrigin;
  if (req.method === "OPTIONS") {
    return new Response(null, { status: 204, headers: corsHeaders(origin) });
  }
  if (req.method !== "POST") {
    return json(405, { success: false, error: `method ${req.method} not allowed` }, origin);
  }

  const now = deps.now ?? (() => performance.now());
  const started = now();
  const totals = { total_processed: 0, successful: 0, failed: 0 };
  let iterations = 0;
  let hasMore = true;
  let stoppedBy: "drained" | "time_budget" | "no_progress" = "drained";

  try {
    while (hasMore) {
      const leftSeconds = (deps.budgetMs - (now() - started)) / 1000;
      if (leftSeconds < MIN_SECONDS_PER_CALL) {
        stoppedBy = "time_budget";
        break;
      }
      const { data, error } = await deps.client.rpc("process_all_pending_orders", {
        p_max_orders: deps.maxOrdersPerCall,
        p_max_seconds: Math.min(deps.maxSecondsPerCall, Math.round(leftSeconds * 1000) / 1000),
      });
      iterations += 1;
      if (error) {
        return json(500, {
          success: false,
          error: error.message,
          code: error.code ?? null,
          details: error.details ?? null,
          hint: error.hint ?? null,
          ...totals,
          iterations,
          duration_ms: Math.round(now() - started),
        }, origin);
      }
      const batch = asBatchResult(data);
      totals.total_processed += batch.total_processed;
      totals.successful += batch.successful;
      totals.failed += batch.failed;
      hasMore = batch.has_more;
      // Orders left but none taken (another worker holds them): let that worker or the
      // sweeper finish instead of spinning on the database.
      if (hasMore && batch.total_processed === 0) {
        stoppedBy = "no_progress";
        break;
      }
    }
  } catch (e) {
    return json(500, {
      success: false,
      error: e instanceof Error ? e.message : String(e),
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

/** Builds the dependencies from the environment the edge runtime provides. */
export function depsFromEnv(env: (name: string) => string | undefined): Deps {
  const url = env("SUPABASE_URL");
  const key = env("SUPABASE_SERVICE_ROLE_KEY");
  if (!url || !key) {
    throw new Error("SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY must be set");
  }
  const client = createClient(url, key, {
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
  });
  return {
    client,
    budgetMs: positiveNumber(env, "PROCESS_QUEUE_BUDGET_MS", DEFAULT_BUDGET_MS),
    maxOrdersPerCall: Math.floor(
      positiveNumber(env, "PROCESS_QUEUE_MAX_ORDERS", DEFAULT_MAX_ORDERS_PER_CALL),
    ),
    maxSecondsPerCall: positiveNumber(
      env,
      "PROCESS_QUEUE_MAX_SECONDS",
      DEFAULT_MAX_SECONDS_PER_CALL,
    ),
    allowedOrigin: env("ALLOWED_ORIGIN") || null,
  };
}

if (import.meta.main) {
  // A configuration error answers every request with a JSON 500 rather than a boot crash.
  let deps: Deps | Error;
  try {
    deps = depsFromEnv((name) => Deno.env.get(name));
  } catch (e) {
    deps = e instanceof Error ? e : new Error(String(e));
  }
  const serve = (req: Request) =>
    deps instanceof Error
      ? json(500, { success: false, error: deps.message }, Deno.env.get("ALLOWED_ORIGIN") || null)
      : handler(req, deps);
  // The edge runtime chooses the port itself; PROCESS_QUEUE_PORT is for local runs.
  const port = Deno.env.get("PROCESS_QUEUE_PORT");
  if (port) {
    Deno.serve({ port: Number(port), hostname: "127.0.0.1" }, serve);
  } else {
    Deno.serve(serve);
  }
}
