// Handler behaviour with the real @supabase/server key checks, a scripted RPC client and a
// fake clock: no network, no waiting.
import assert from "node:assert/strict";
import {
  type AuthEnv,
  type Deps,
  depsFromEnv,
  handler,
  type RpcClient,
  type RpcError,
} from "./index.ts";

type Answer = { data: unknown; error: RpcError | null };

const SECRET_DEFAULT = "sb_secret_defaultDEFAULTdefaultDEFAULT01";
const SECRET_WEBHOOK = "sb_secret_webhookWEBHOOKwebhookWEBHOOK02";
const PUBLISHABLE = "sb_publishable_publicPUBLICpublicPUBLIC03";
// Shaped like the legacy anon key and a user's session token (HS256 JWTs, no kid).
const LEGACY_ANON_JWT = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9." +
  "eyJpc3MiOiJzdXBhYmFzZSIsInJvbGUiOiJhbm9uIn0.c2lnbmF0dXJlLW9mLWFub24ta2V5";
const USER_JWT = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9." +
  "eyJzdWIiOiIxMjMiLCJyb2xlIjoiYXV0aGVudGljYXRlZCJ9.c2lnbmF0dXJlLW9mLXVzZXItand0";

const AUTH_ENV: AuthEnv = {
  url: "http://127.0.0.1:1",
  secretKeys: { default: SECRET_DEFAULT, process_queue_webhook: SECRET_WEBHOOK },
  publishableKeys: { default: PUBLISHABLE },
  jwks: { keys: [] },
};

/** An RPC client that replays answers per function and records each call; `tick` ms pass
 * per call. begin_process_queue_drain answers "drain-1" and end_process_queue_drain false
 * unless scripted otherwise. */
function scripted(
  answers: Answer[],
  clock: { t: number },
  tick = 0,
  ends: Answer[] = [],
) {
  const calls: { fn: string; args: Record<string, unknown> }[] = [];
  const client: RpcClient = {
    rpc(fn, args) {
      calls.push({ fn, args });
      if (fn === "begin_process_queue_drain") return Promise.resolve(ok("drain-1"));
      if (fn === "end_process_queue_drain") return Promise.resolve(ends.shift() ?? ok(false));
      clock.t += tick;
      const answer = answers.shift();
      if (!answer) throw new Error("more calls than scripted answers");
      return Promise.resolve(answer);
    },
  };
  return { client, calls };
}

function ok(data: unknown): Answer {
  return { data, error: null };
}

function batch(total: number, good: number, failed: number, hasMore: boolean): Answer {
  return ok({
    total_processed: total,
    successful: good,
    failed,
    has_more: hasMore,
    duration_ms: 7,
  });
}

function deps(client: RpcClient, clock: { t: number }, extra: Partial<Deps> = {}) {
  const keyNames: (string | undefined)[] = [];
  const d: Deps = {
    authEnv: AUTH_ENV,
    clientFor: (keyName) => {
      keyNames.push(keyName);
      return client;
    },
    budgetMs: 25_000,
    maxOrdersPerCall: 1000,
    maxSecondsPerCall: 5,
    busyRetryMs: 250,
    allowedOrigin: "https://app.example.test",
    now: () => clock.t,
    sleep: (ms) => {
      clock.t += ms;
      return Promise.resolve();
    },
    ...extra,
  };
  return Object.assign(d, { keyNames });
}

const URL_ = "http://localhost/functions/v1/process-queue";
const post = (headers: Record<string, string> = { apikey: SECRET_WEBHOOK }) =>
  new Request(URL_, { method: "POST", headers });

const PROCESS = "process_all_pending_orders";
const processArgs = (seconds = 5) => ({ p_max_orders: 1000, p_max_seconds: seconds });
const begin = { fn: "begin_process_queue_drain", args: {} };
const end = (stoppedBy: string) => ({
  fn: "end_process_queue_drain",
  args: { p_drain_id: "drain-1", p_stopped_by: stoppedBy },
});

/** Runs fn with console.error captured; returns what was logged. */
async function capturingErrors<T>(fn: () => Promise<T>): Promise<[T, string]> {
  const original = console.error;
  const logged: unknown[][] = [];
  console.error = (...args: unknown[]) => logged.push(args);
  try {
    return [await fn(), logged.map((a) => a.map(String).join(" ")).join("\n")];
  } finally {
    console.error = original;
  }
}

// --- who may call ----------------------------------------------------------------------------

Deno.test("a secret key in apikey is accepted, by any name, and picks the admin client", async () => {
  for (
    const [key, name] of [[SECRET_WEBHOOK, "process_queue_webhook"], [SECRET_DEFAULT, "default"]]
  ) {
    const clock = { t: 0 };
    const { client, calls } = scripted([batch(0, 0, 0, false)], clock);
    const d = deps(client, clock);
    const res = await handler(post({ apikey: key }), d);
    assert.equal(res.status, 200);
    assert.equal((await res.json()).success, true);
    assert.deepEqual(d.keyNames, [name]);
    assert.deepEqual(calls, [begin, { fn: PROCESS, args: processArgs() }, end("drained")]);
  }
});

Deno.test("a legacy JWT beside the secret key (the switch-over) is still accepted", async () => {
  const clock = { t: 0 };
  const { client } = scripted([batch(0, 0, 0, false)], clock);
  const res = await handler(
    post({ apikey: SECRET_WEBHOOK, Authorization: `Bearer ${LEGACY_ANON_JWT}` }),
    deps(client, clock),
  );
  assert.equal(res.status, 200);
});

const REFUSED: [string, Record<string, string>, string][] = [
  ["no key", {}, "MISSING_CREDENTIALS"],
  ["the publishable key", { apikey: PUBLISHABLE }, "INVALID_API_KEY"],
  ["the legacy anon JWT as apikey", { apikey: LEGACY_ANON_JWT }, "INVALID_API_KEY"],
  [
    "the legacy anon JWT as bearer",
    { Authorization: `Bearer ${LEGACY_ANON_JWT}` },
    "INVALID_CREDENTIALS",
  ],
  ["a user's JWT", { Authorization: `Bearer ${USER_JWT}` }, "INVALID_CREDENTIALS"],
  ["a user's JWT with the publishable key", {
    apikey: PUBLISHABLE,
    Authorization: `Bearer ${USER_JWT}`,
  }, "INVALID_API_KEY"],
  [
    "the secret key as bearer only",
    { Authorization: `Bearer ${SECRET_WEBHOOK}` },
    "UNUSABLE_CREDENTIAL",
  ],
  [
    "an unknown secret key",
    { apikey: "sb_secret_notOneOfTheProjectKeys0000000" },
    "INVALID_API_KEY",
  ],
];

for (const [what, headers, code] of REFUSED) {
  Deno.test(`${what}: 401 with a JSON body, nothing called`, async () => {
    const clock = { t: 0 };
    const { client, calls } = scripted([], clock);
    const d = deps(client, clock);
    const [res, logged] = await capturingErrors(() => handler(post(headers), d));
    assert.equal(res.status, 401);
    assert.equal(res.headers.get("content-type"), "application/json");
    assert.deepEqual(await res.json(), {
      success: false,
      error: "a secret API key is required (apikey header)",
      code,
    });
    assert.deepEqual(calls, []);
    assert.deepEqual(d.keyNames, []);
    assert.match(logged, new RegExp(`request refused \\(${code}\\)`));
  });
}

Deno.test("no secret key configured: 500 without details, nothing called", async () => {
  const clock = { t: 0 };
  const { client, calls } = scripted([], clock);
  const d = deps(client, clock, { authEnv: { ...AUTH_ENV, secretKeys: {} } });
  const [res, logged] = await capturingErrors(() => handler(post(), d));
  assert.equal(res.status, 500);
  assert.deepEqual(await res.json(), {
    success: false,
    error: "server misconfigured",
    code: "NO_KEYS_CONFIGURED",
  });
  assert.deepEqual(calls, []);
  assert.match(logged, /NO_KEYS_CONFIGURED/);
});

// --- the drain -------------------------------------------------------------------------------

Deno.test("drains until has_more is false, asks the database, and sums the counts", async () => {
  const clock = { t: 1000 };
  const { client, calls } = scripted(
    [batch(1000, 990, 10, true), batch(1000, 1000, 0, true), batch(42, 40, 2, false)],
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
  const p = { fn: PROCESS, args: processArgs() };
  assert.deepEqual(calls, [begin, p, p, p, end("drained")]);
});

Deno.test("orders that arrived meanwhile (end answers true) are drained too", async () => {
  const clock = { t: 0 };
  const { client, calls } = scripted(
    [batch(3, 3, 0, false), batch(2, 2, 0, false)],
    clock,
    10,
    [ok(true), ok(false)],
  );
  const res = await handler(post(), deps(client, clock));
  const body = await res.json();
  assert.equal(res.status, 200);
  assert.deepEqual([body.total_processed, body.iterations, body.has_more], [5, 2, false]);
  const p = { fn: PROCESS, args: processArgs() };
  assert.deepEqual(calls, [begin, p, end("drained"), p, end("drained")]);
});

Deno.test("an RPC error answers 500 without the database's text, logs it, ends the drain", async () => {
  const clock = { t: 0 };
  const { client, calls } = scripted(
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
  const [res, logged] = await capturingErrors(() => handler(post(), deps(client, clock)));
  assert.equal(res.status, 500);
  assert.equal(res.headers.get("access-control-allow-origin"), "https://app.example.test");
  assert.deepEqual(await res.json(), {
    success: false,
    error: "process_all_pending_orders failed",
    total_processed: 5,
    successful: 5,
    failed: 0,
    iterations: 1,
    duration_ms: 20,
  });
  assert.match(logged, /process_all_pending_orders\(\) does not exist/);
  assert.deepEqual(calls.at(-1), end("failed"));
});

Deno.test("a thrown client error (network down) answers 500, no message or stack", async () => {
  const clock = { t: 0 };
  const client: RpcClient = {
    rpc: () => Promise.reject(new TypeError("error sending request: connection refused")),
  };
  const [res, logged] = await capturingErrors(() => handler(post(), deps(client, clock)));
  assert.equal(res.status, 500);
  const text = await res.text();
  assert.deepEqual(JSON.parse(text), {
    success: false,
    error: "begin_process_queue_drain failed",
    total_processed: 0,
    successful: 0,
    failed: 0,
    iterations: 0,
    duration_ms: 0,
  });
  assert.doesNotMatch(text, /connection refused|at /);
  assert.match(logged, /connection refused/);
});

Deno.test("a malformed RPC result answers 500 instead of looping on garbage", async () => {
  const clock = { t: 0 };
  const { client } = scripted([ok({ processed: true })], clock);
  const [res, logged] = await capturingErrors(() => handler(post(), deps(client, clock)));
  assert.equal(res.status, 500);
  const body = await res.json();
  assert.equal(body.success, false);
  assert.equal(body.error, "process_all_pending_orders failed");
  assert.match(logged, /unexpected result/);
});

Deno.test("stops when the time budget is spent and hands over to a new wake", async () => {
  const clock = { t: 0 };
  // Each call takes 4 s of a 10 s budget: calls start at 0, 4 and 8 s (the last one
  // limited to the 2 s left), then the budget is spent.
  const { client, calls } = scripted(
    [batch(1000, 1000, 0, true), batch(1000, 1000, 0, true), batch(400, 399, 1, true)],
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
  assert.deepEqual(calls.filter((c) => c.fn === PROCESS).map((c) => c.args.p_max_seconds), [
    5,
    5,
    2,
  ]);
  assert.deepEqual(calls.at(-1), end("time_budget"));
});

Deno.test("orders held by another worker: waits and tries again instead of spinning", async () => {
  const clock = { t: 0 };
  const { client, calls } = scripted(
    [batch(3, 3, 0, true), batch(0, 0, 0, true), batch(0, 0, 0, true), batch(4, 4, 0, false)],
    clock,
    1,
  );
  const res = await handler(post(), deps(client, clock));
  const body = await res.json();
  assert.equal(res.status, 200);
  assert.deepEqual([body.stopped_by, body.has_more, body.total_processed], ["drained", false, 7]);
  assert.equal(calls.filter((c) => c.fn === PROCESS).length, 4);
  assert.equal(body.duration_ms, 4 + 2 * 250);
});

Deno.test("CORS preflight answers 204 with the allowed origin and calls nothing", async () => {
  const clock = { t: 0 };
  const { client, calls } = scripted([], clock);
  const req = new Request(URL_, {
    method: "OPTIONS",
    headers: {
      "Origin": "https://app.example.test",
      "Access-Control-Request-Method": "POST",
      "Access-Control-Request-Headers": "apikey, content-type",
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
  const req = new Request(URL_, { method: "OPTIONS" });
  const res = await handler(req, deps(client, clock, { allowedOrigin: null }));
  assert.equal(res.status, 204);
  assert.equal(res.headers.get("access-control-allow-origin"), null);
});

Deno.test("other methods answer 405 with JSON and call nothing", async () => {
  const clock = { t: 0 };
  const { client, calls } = scripted([], clock);
  const res = await handler(new Request(URL_, { method: "GET" }), deps(client, clock));
  assert.equal(res.status, 405);
  assert.equal(res.headers.get("content-type"), "application/json");
  assert.deepEqual(await res.json(), { success: false, error: "method GET not allowed" });
  assert.equal(calls.length, 0);
});

Deno.test("depsFromEnv reads the settings and rejects bad ones", () => {
  const env = (vars: Record<string, string>) => (name: string) => vars[name];
  const d = depsFromEnv(env({}), AUTH_ENV);
  assert.deepEqual(
    [d.budgetMs, d.maxOrdersPerCall, d.maxSecondsPerCall, d.busyRetryMs, d.allowedOrigin],
    [25_000, 1000, 5, 250, null],
  );
  assert.equal(typeof d.clientFor("process_queue_webhook").rpc, "function");
  const custom = depsFromEnv(env({
    PROCESS_QUEUE_BUDGET_MS: "60000",
    PROCESS_QUEUE_MAX_ORDERS: "250",
    PROCESS_QUEUE_MAX_SECONDS: "2.5",
    PROCESS_QUEUE_BUSY_RETRY_MS: "100",
    ALLOWED_ORIGIN: "https://pauv.example",
  }));
  assert.deepEqual(
    [
      custom.budgetMs,
      custom.maxOrdersPerCall,
      custom.maxSecondsPerCall,
      custom.busyRetryMs,
      custom.allowedOrigin,
    ],
    [60_000, 250, 2.5, 100, "https://pauv.example"],
  );
  assert.throws(
    () => depsFromEnv(env({ PROCESS_QUEUE_BUDGET_MS: "soon" })),
    { message: 'PROCESS_QUEUE_BUDGET_MS must be a positive number, got "soon"' },
  );
});
