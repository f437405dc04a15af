// Handler behaviour with a scripted RPC client and a fake clock: no network, no waiting.
import assert from "node:assert/strict";
import { type Deps, depsFromEnv, handler, type RpcClient, type RpcError } from "./index.ts";

type Answer = { data: unknown; error: RpcError | null };

/** An RPC client that replays answers and records each call; `tick` ms pass per call. */
function scripted(answers: Answer[], clock: { t: number }, tick = 0) {
  const calls: { fn: string; args: Record<string, unknown> }[] = [];
  const client: RpcClient = {
    rpc(fn, args) {
      calls.push({ fn, args });
      clock.t += tick;
      const answer = answers.shift();
      if (!answer) throw new Error("more calls than scripted answers");
      return Promise.resolve(answer);
    },
  };
  return { client, calls };
}

function batch(total: number, ok: number, failed: number, hasMore: boolean): Answer {
  return {
    data: {
      total_processed: total,
      successful: ok,
      failed,
      has_more: hasMore,
      duration_ms: 7,
    },
    error: null,
  };
}

function deps(client: RpcClient, clock: { t: number }, extra: Partial<Deps> = {}): Deps {
  return {
    client,
    budgetMs: 25_000,
    maxOrdersPerCall: 1000,
    maxSecondsPerCall: 5,
    allowedOrigin: "https://app.example.test",
    now: () => clock.t,
    ...extra,
  };
}

const post = () => new Request("http://localhost/functions/v1/process-queue", { method: "POST" });

Deno.test("drains until has_more is false and sums the counts", async () => {
  const clock = { t: 1000 };
  const { client, calls } = scripted(
    [
      batch(1000, 990, 10, true),
      batch(1000, 1000, 0, true),
      batch(42, 40, 2, false),
    ],
    clock,
    1500,
  );
  const res = await handler(post(), deps(client, clock));
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-type"), "application/json");
  assert.equal(res.headers.get("access-control-allow-origin"), "https://app.example.test");
  assert.deepEqual(await res.json(), {
    success: true,
    total_processed: 2042,
    successful: 2030,
    failed: 12,
    has_more: false,
    stopped_by: "drained",
    iterations: 3,
    duration_ms: 4500,
  });
  assert.deepEqual(calls, [
    { fn: "process_all_pending_orders", args: { p_max_orders: 1000, p_max_seconds: 5 } },
    { fn: "process_all_pending_orders", args: { p_max_orders: 1000, p_max_seconds: 5 } },
    { fn: "process_all_pending_orders", args: { p_max_orders: 1000, p_max_seconds: 5 } },
  ]);
});

Deno.test("an empty queue takes one call", async () => {
  const clock = { t: 0 };
  const { client, calls } = scripted([batch(0, 0, 0, false)], clock, 3);
  const res = await handler(post(), deps(client, clock));
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), {
    success: true,
    total_processed: 0,
    successful: 0,
    failed: 0,
    has_more: false,
    stopped_by: "drained",
    iterations: 1,
    duration_ms: 3,
  });
  assert.equal(calls.length, 1);
});

Deno.test("an RPC error answers 500 with the PostgREST error and what was done", async () => {
  const clock = { t: 0 };
  const { client } = scripted(
    [
      batch(5, 5, 0, true),
      {
        data: null,
        error: {
          code: "42883",
          message: "function public.process_all_pending_orders() does not exist",
          details: null,
          hint: "No function matches the given name and argument types.",
        },
      },
    ],
    clock,
    10,
  );
  const res = await handler(post(), deps(client, clock));
  assert.equal(res.status, 500);
  assert.equal(res.headers.get("access-control-allow-origin"), "https://app.example.test");
  assert.deepEqual(await res.json(), {
    success: false,
    error: "function public.process_all_pending_orders() does not exist",
    code: "42883",
    details: null,
    hint: "No function matches the given name and argument types.",
    total_processed: 5,
    successful: 5,
    failed: 0,
    iterations: 2,
    duration_ms: 20,
  });
});

Deno.test("a thrown client error (network down) answers 500 with its message", async () => {
  const clock = { t: 0 };
  const client: RpcClient = {
    rpc: () => Promise.reject(new TypeError("error sending request: connection refused")),
  };
  const res = await handler(post(), deps(client, clock));
  assert.equal(res.status, 500);
  assert.deepEqual(await res.json(), {
    success: false,
    error: "error sending request: connection refused",
    total_processed: 0,
    successful: 0,
    failed: 0,
    iterations: 0,
    duration_ms: 0,
  });
});

Deno.test("a malformed RPC result answers 500 instead of looping on garbage", async () => {
  const clock = { t: 0 };
  const { client } = scripted([{ data: { processed: true }, error: null }], clock);
  const res = await handler(post(), deps(client, clock));
  assert.equal(res.status, 500);
  const body = await res.json();
  assert.equal(body.success, false);
  assert.equal(
    body.error,
    'unexpected result from process_all_pending_orders: {"processed":true}',
  );
});

Deno.test("stops when the time budget is spent, with has_more still true", async () => {
  const clock = { t: 0 };
  // Each call takes 4 s of a 10 s budget: calls start at 0, 4 and 8 s (the last one
  // limited to the 2 s left), then the budget is spent.
  const { client, calls } = scripted(
    [
      batch(1000, 1000, 0, true),
      batch(1000, 1000, 0, true),
      batch(400, 399, 1, true),
    ],
    clock,
    4000,
  );
  const res = await handler(post(), deps(client, clock, { budgetMs: 10_000 }));
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), {
    success: true,
    total_processed: 2400,
    successful: 2399,
    failed: 1,
    has_more: true,
    stopped_by: "time_budget",
    iterations: 3,
    duration_ms: 12000,
  });
  assert.deepEqual(calls.map((c) => c.args.p_max_seconds), [5, 5, 2]);
});

Deno.test("stops instead of spinning when orders remain but none could be taken", async () => {
  const clock = { t: 0 };
  const { client, calls } = scripted([batch(3, 3, 0, true), batch(0, 0, 0, true)], clock, 1);
  const res = await handler(post(), deps(client, clock));
  const body = await res.json();
  assert.equal(res.status, 200);
  assert.equal(body.stopped_by, "no_progress");
  assert.equal(body.has_more, true);
  assert.equal(body.total_processed, 3);
  assert.equal(calls.length, 2);
});

Deno.test("CORS preflight answers 204 with the allowed origin and calls nothing", async () => {
  const clock = { t: 0 };
  const { client, calls } = scripted([], clock);
  const req = new Request("http://localhost/functions/v1/process-queue", {
    method: "OPTIONS",
    headers: {
      "Origin": "https://app.example.test",
      "Access-Control-Request-Method": "POST",
      "Access-Control-Request-Headers": "authorization, content-type",
    },
  });
  const res = await handler(req, deps(client, clock));
  assert.equal(res.status, 204);
  assert.equal(await res.text(), "");
  assert.equal(res.headers.get("access-control-allow-origin"), "https://app.example.test");
  assert.equal(res.headers.get("access-control-allow-methods"), "POST, OPTIONS");
  assert.equal(
    res.headers.get("access-control-allow-headers"),
    "authorization, x-client-info, apikey, content-type",
  );
  assert.equal(res.headers.get("vary"), "Origin");
  assert.equal(calls.length, 0);
});

Deno.test("without ALLOWED_ORIGIN no cross-origin grant is sent", async () => {
  const clock = { t: 0 };
  const { client } = scripted([], clock);
  const req = new Request("http://localhost/", { method: "OPTIONS" });
  const res = await handler(req, deps(client, clock, { allowedOrigin: null }));
  assert.equal(res.status, 204);
  assert.equal(res.headers.get("access-control-allow-origin"), null);
});

Deno.test("other methods answer 405 and call nothing", async () => {
  const clock = { t: 0 };
  const { client, calls } = scripted([], clock);
  const res = await handler(
    new Request("http://localhost/", { method: "GET" }),
    deps(client, clock),
  );
  assert.equal(res.status, 405);
  assert.deepEqual(await res.json(), { success: false, error: "method GET not allowed" });
  assert.equal(calls.length, 0);
});

Deno.test("depsFromEnv reads the settings and rejects bad ones", () => {
  const env = (vars: Record<string, string>) => (name: string) => vars[name];
  const base = { SUPABASE_URL: "http://127.0.0.1:1", SUPABASE_SERVICE_ROLE_KEY: "k" };
  const d = depsFromEnv(env(base));
  assert.equal(d.budgetMs, 25_000);
  assert.equal(d.maxOrdersPerCall, 1000);
  assert.equal(d.maxSecondsPerCall, 5);
  assert.equal(d.allowedOrigin, null);
  assert.equal(typeof d.client.rpc, "function");
  const custom = depsFromEnv(env({
    ...base,
    PROCESS_QUEUE_BUDGET_MS: "60000",
    PROCESS_QUEUE_MAX_ORDERS: "250",
    PROCESS_QUEUE_MAX_SECONDS: "2.5",
    ALLOWED_ORIGIN: "https://pauv.example",
  }));
  assert.deepEqual(
    [custom.budgetMs, custom.maxOrdersPerCall, custom.maxSecondsPerCall, custom.allowedOrigin],
    [60_000, 250, 2.5, "https://pauv.example"],
  );
  assert.throws(
    () => depsFromEnv(env({ ...base, PROCESS_QUEUE_BUDGET_MS: "soon" })),
    { message: 'PROCESS_QUEUE_BUDGET_MS must be a positive number, got "soon"' },
  );
  assert.throws(
    () => depsFromEnv(env({ SUPABASE_URL: "http://127.0.0.1:1" })),
    { message: "SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY must be set" },
  );
});
