"""A stand-in for a Supabase project's HTTP API, for tests only (Supabase itself cannot run
here). One local server plays the two routes our code uses, with both kinds of API keys:
the new ones (``sb_publishable_...``, ``sb_secret_...``: opaque strings, held in named sets
as the platform gives them to functions) and, until they are disabled, the legacy JWT keys.

- ``POST /rest/v1/rpc/<function>``: the API gateway and PostgREST's RPC. The ``apikey``
  header is required. A new-format key is looked up: a secret key acts as
  ``service_role``, a publishable key as ``anon`` (or as the user whose JWT, HS256 with
  the test secret, is the bearer token); an unknown one is refused. A legacy key (a JWT) is
  verified, and its ``role`` claim (or the bearer's) is used, unless legacy keys have been
  disabled. The server connects as ``authenticator``, then ``set local role`` and
  ``request.jwt.claims``, calls ``public.<function>(name => value, ...)`` with the JSON
  body's keys as named arguments (cast to the parameter types, as PostgREST does) and
  answers the result as JSON. Errors answer ``{"code","message","details","hint"}`` with
  PostgREST's HTTP status for the SQLSTATE.
- ``/functions/v1/<name>``: the edge functions gateway. With ``verify_jwt = false`` it
  passes every request through untouched; with ``verify_jwt = true`` the bearer token must
  be a valid project JWT. The request is proxied to the function registered under that
  name (a real ``deno serve`` of it, in the tests).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import secrets
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

# The project's JWT secret in the tests (hosted projects have their own).
TEST_JWT_SECRET = "pauv-test-jwt-secret-with-at-least-32-characters"
VOID = "pauv-standin:void"
NO_CONTENT = object()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_jwt(claims: dict[str, Any], secret: str = TEST_JWT_SECRET) -> str:
    """An HS256 JWT, like Supabase's legacy anon/service_role keys."""
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = _b64url(json.dumps(claims, separators=(",", ":")).encode())
    signature = hmac.new(secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64url(signature)}"


def new_api_key(kind: str) -> str:
    """A new-format API key of `kind` ('secret' or 'publishable'): opaque, random."""
    return f"sb_{kind}_{secrets.token_urlsafe(24)}"


def project_key(role: str, secret: str = TEST_JWT_SECRET) -> str:
    """The project API key of `role` ('anon' or 'service_role'), shaped like Supabase's."""
    now = int(time.time())
    return make_jwt({"iss": "supabase", "ref": "pauv-test", "role": role,
                     "iat": now, "exp": now + 10 * 365 * 24 * 3600}, secret)


class JwtError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def verify_jwt(token: str, secret: str = TEST_JWT_SECRET) -> dict[str, Any]:
    """The claims of a valid HS256 token; JwtError (with PostgREST's code) otherwise."""
    parts = token.split(".")
    if len(parts) != 3:
        raise JwtError("PGRST301", "Expected 3 parts in JWT; got %d" % len(parts))
    try:
        header = json.loads(_b64url_decode(parts[0]))
        claims = json.loads(_b64url_decode(parts[1]))
        signature = _b64url_decode(parts[2])
    except (ValueError, json.JSONDecodeError) as e:
        raise JwtError("PGRST301", f"JWSError JWSInvalidFormat: {e}") from None
    if header.get("alg") != "HS256":
        raise JwtError("PGRST301", "JWSError JWSInvalidSignature")
    expected = hmac.new(secret.encode(), f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(signature, expected):
        raise JwtError("PGRST301", "JWSError JWSInvalidSignature")
    if "exp" in claims and time.time() >= float(claims["exp"]):
        raise JwtError("PGRST303", "JWT expired")
    return claims


def http_status_for(sqlstate: str, role: str) -> int:
    """PostgREST's HTTP status for a SQLSTATE (its documented table)."""
    if sqlstate == "42501":  # insufficient_privilege: 401 when not signed in at all
        return 401 if role == "anon" else 403
    if len(sqlstate) == 5 and sqlstate.startswith("PT") and sqlstate[2:].isdigit():
        return int(sqlstate[2:])
    exact = {"23503": 409, "23505": 409, "25006": 405, "P0001": 400, "42883": 404,
             "42P01": 404, "42P17": 500}
    if sqlstate in exact:
        return exact[sqlstate]
    by_class = {"08": 503, "09": 500, "0L": 403, "0P": 403, "25": 500, "28": 403, "2D": 500,
                "38": 500, "39": 500, "3B": 500, "40": 500, "53": 503, "54": 500, "55": 500,
                "57": 500, "58": 500, "F0": 500, "HV": 500, "P0": 500, "XX": 500}
    return by_class.get(sqlstate[:2], 400)


def _error(code: str | None, message: str, details: str | None = None,
           hint: str | None = None) -> dict[str, Any]:
    return {"code": code, "message": message, "details": details, "hint": hint}


class SupabaseApiStandin:
    """The server; `url` is the project URL (what SUPABASE_URL and Vault's project_url hold)."""

    def __init__(self, dsn_for_role, jwt_secret: str = TEST_JWT_SECRET):
        # dsn_for_role(role) -> libpq DSN; the RPC route connects as 'authenticator'.
        self._dsn_for_role = dsn_for_role
        self.jwt_secret = jwt_secret
        # The project's API keys by name, as SUPABASE_SECRET_KEYS / _PUBLISHABLE_KEYS hold
        # them; tests add and delete keys as an operator does in the dashboard.
        self.secret_keys: dict[str, str] = {"default": new_api_key("secret")}
        self.publishable_keys: dict[str, str] = {"default": new_api_key("publishable")}
        self.legacy_keys_enabled = True
        self.functions: dict[str, tuple[str, bool]] = {}  # name -> (upstream URL, verify_jwt)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def function_env(self) -> dict[str, str]:
        """What the platform gives every function: the URL and the keys, the legacy ones
        too while they are enabled."""
        env = {
            "SUPABASE_URL": self.url,
            "SUPABASE_SECRET_KEYS": json.dumps(self.secret_keys),
            "SUPABASE_PUBLISHABLE_KEYS": json.dumps(self.publishable_keys),
        }
        if self.legacy_keys_enabled:
            env["SUPABASE_SERVICE_ROLE_KEY"] = project_key("service_role", self.jwt_secret)
            env["SUPABASE_ANON_KEY"] = project_key("anon", self.jwt_secret)
        return env

    def register_function(self, name: str, upstream_url: str, verify_jwt: bool) -> None:
        self.functions[name] = (upstream_url.rstrip("/"), verify_jwt)

    def start(self) -> SupabaseApiStandin:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # --- routes ---------------------------------------------------------------------------

    def rpc(self, function: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        apikey = headers.get("apikey")
        if not apikey:
            # The API gateway answers this before PostgREST sees the request.
            return 401, {"message": "No API key found in request",
                         "hint": "No `apikey` request header or url param was found."}
        auth = headers.get("authorization", "")
        bearer = auth[7:] if auth.lower().startswith("bearer ") else None
        claims = self._claims_for(apikey, bearer)
        if isinstance(claims, tuple):
            return claims
        role = claims.get("role")
        if role not in ("anon", "authenticated", "service_role"):
            return 401, _error("PGRST301", f"role {role!r} is not an API role")
        try:
            args = json.loads(body or b"{}")
        except json.JSONDecodeError as e:
            return 400, _error("PGRST102", f"Empty or invalid json: {e}")
        if not isinstance(args, dict):
            return 400, _error("PGRST102", "The request body must be a JSON object of arguments")

        with psycopg.connect(self._dsn_for_role("authenticator")) as conn:
            target = self._find_function(conn, function, args)
            if isinstance(target, tuple):
                return target
            try:
                conn.execute(sql.SQL("set local role {}").format(sql.Identifier(role)))
                conn.execute("select set_config('request.jwt.claims', %s, true),"
                             " set_config('request.method', 'POST', true),"
                             " set_config('request.path', %s, true)",
                             (json.dumps(claims), f"/rpc/{function}"))
                value = conn.execute(target, (json.dumps(args),)).fetchone()[0]
                if value == VOID:  # PostgREST answers a void function with 204
                    value = NO_CONTENT
                conn.commit()
            except psycopg.Error as e:
                conn.rollback()
                diag = e.diag
                sqlstate = diag.sqlstate or "XX000"
                return http_status_for(sqlstate, role), _error(
                    sqlstate, diag.message_primary or str(e), diag.message_detail,
                    diag.message_hint)
        return 200, value

    def _claims_for(self, apikey: str, bearer: str | None) -> dict[str, Any] | tuple[int, Any]:
        """The JWT claims the request runs with, or the gateway's error response."""
        if apikey.startswith("sb_"):
            if apikey in self.secret_keys.values():
                key_role = "service_role"
            elif apikey in self.publishable_keys.values():
                key_role = "anon"
            else:
                return 401, {"message": "Invalid API key",
                             "hint": "Double check the provided API key as it is not valid."}
            if bearer is None or bearer == apikey:
                # The gateway mints a short-lived JWT of the key's role for PostgREST.
                return {"iss": "supabase", "role": key_role}
            token = bearer
        else:
            if not self.legacy_keys_enabled:
                return 401, {"message": "Legacy API keys are disabled",
                             "hint": "Use the publishable or secret API keys instead."}
            token = bearer or apikey
        try:
            return verify_jwt(token, self.jwt_secret)
        except JwtError as e:
            return 401, _error(e.code, e.message)

    @staticmethod
    def _find_function(conn: psycopg.Connection, function: str,
                       args: dict[str, Any]) -> sql.Composed | tuple[int, Any]:
        """The call statement for the overload the argument names select, like PostgREST's
        schema cache lookup, or an error response."""
        rows = conn.execute(
            """
            select p.proretset, p.prorettype = 'void'::regtype,
                   coalesce(p.proargnames[1:p.pronargs], '{}'),
                   array(select format_type(t, null) from unnest(p.proargtypes) as t),
                   p.pronargs - p.pronargdefaults
            from pg_proc as p
            where p.pronamespace = 'public'::regnamespace and p.proname = %s
              and (p.proargmodes is null or 'o' <> all(p.proargmodes))
            """,
            (function,),
        ).fetchall()
        conn.rollback()
        keys = set(args)
        matches = []
        for retset, returns_void, names, types, required in rows:
            if keys <= set(names) and set(names[:required]) <= keys:
                matches.append((retset, returns_void, names, types))
        if not matches:
            listed = ", ".join(sorted(keys))
            return 404, _error(
                "PGRST202",
                f"Could not find the function public.{function}({listed}) in the schema cache",
                f"Searched for the function public.{function} with parameters {listed} or with "
                "a single unnamed json/jsonb parameter, but no matches were found in the "
                "schema cache.", None)
        if len(matches) > 1:
            return 300, _error("PGRST203", f"Could not choose the best candidate function "
                                           f"between overloads of public.{function}")
        retset, returns_void, names, types = matches[0]
        given = [(n, t) for n, t in zip(names, types) if n in keys]
        call = sql.SQL("public.{}({})").format(
            sql.Identifier(function),
            sql.SQL(", ").join(sql.SQL("{} => _args.{}").format(sql.Identifier(n),
                                                                sql.Identifier(n))
                               for n, _ in given))
        # The JSON body is cast to the parameter types by jsonb_to_record, as PostgREST does.
        source = sql.SQL("jsonb_to_record(%s::jsonb) as _args ({})").format(
            sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(t))
                               for n, t in given)) if given else sql.SQL(
            "(select %s::jsonb) as _args")
        if retset:
            return sql.SQL("select coalesce(jsonb_agg(to_jsonb(_r)), '[]'::jsonb) from {}"
                           " cross join lateral {} as _r").format(source, call)
        if returns_void:
            return sql.SQL("select {}, {} from {}").format(sql.Literal(VOID), call, source)
        return sql.SQL("select to_jsonb({}) from {}").format(call, source)

    def function(self, name: str, method: str, headers: dict[str, str],
                 body: bytes) -> tuple[int, dict[str, str], bytes]:
        if name not in self.functions:
            return 404, {"Content-Type": "application/json"}, json.dumps(
                {"code": "NOT_FOUND", "message": "Requested function was not found"}).encode()
        upstream, must_verify = self.functions[name]
        if must_verify and method != "OPTIONS":
            auth = headers.get("authorization", "")
            if not auth.lower().startswith("bearer "):
                return 401, {"Content-Type": "application/json"}, json.dumps(
                    {"code": 401, "message": "Missing authorization header"}).encode()
            try:
                claims = verify_jwt(auth[7:], self.jwt_secret)
                if not self.legacy_keys_enabled and "sub" not in claims:
                    raise JwtError("PGRST301", "legacy API key")  # anon / service_role
            except JwtError:
                return 401, {"Content-Type": "application/json"}, json.dumps(
                    {"code": 401, "message": "Invalid JWT"}).encode()
        forwarded = {k: v for k, v in headers.items() if k not in ("host", "content-length")}
        req = urllib.request.Request(upstream, data=body if method != "GET" else None,
                                     headers=forwarded, method=method)
        try:
            with urllib.request.urlopen(req, timeout=120) as res:
                return res.status, dict(res.headers.items()), res.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers.items()), e.read()

    def _handler_class(self):
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet test output
                pass

            def _body(self) -> bytes:
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
                self.send_response(status)
                for k, v in headers.items():
                    if k.lower() not in ("content-length", "transfer-encoding", "connection",
                                         "date", "server"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _route(self) -> None:
                headers = {k.lower(): v for k, v in self.headers.items()}
                body = self._body()
                path = self.path.split("?", 1)[0]
                if path.startswith("/rest/v1/rpc/") and self.command == "POST":
                    status, value = api.rpc(path[len("/rest/v1/rpc/"):], headers, body)
                    if value is NO_CONTENT:
                        self._send(204, {}, b"")
                    else:
                        self._send(status, {"Content-Type": "application/json; charset=utf-8"},
                                   json.dumps(value).encode())
                elif path.startswith("/functions/v1/"):
                    name = path[len("/functions/v1/"):].split("/", 1)[0]
                    self._send(*api.function(name, self.command, headers, body))
                else:
                    self._send(404, {"Content-Type": "application/json"},
                               json.dumps(_error("PGRST125", f"Invalid path {path}")).encode())

            do_GET = do_POST = do_OPTIONS = do_PATCH = do_DELETE = _route

        return Handler


# --- an edge function under Deno, and pg_net's worker -------------------------------------------


class FunctionStartError(RuntimeError):
    pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve_function(api: SupabaseApiStandin, name: str, deno: Path, function_dir: Path,
                   env: dict[str, str], verify_jwt: bool) -> Iterator[str]:
    """The function in `function_dir` served by the real Deno (`deno serve`, as the edge
    runtime serves its default export) on a free port, with `env` plus what the platform
    gives every function now (api.function_env()), registered behind the gateway as `name`.
    Yields its own URL; the instance registered before it serves again afterwards."""
    port = _free_port()
    previous = api.functions.get(name)
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        [str(deno), "serve", "--frozen", "--no-prompt", "--allow-net", "--allow-env",
         "--host", "127.0.0.1", "--port", str(port), "index.ts"],
        cwd=function_dir, env=env | api.function_env(), stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120  # the first run fetches the npm packages
        while True:
            if proc.poll() is not None:
                log.seek(0)
                raise FunctionStartError(f"deno exited with {proc.returncode}:\n"
                                         f"{log.read().decode()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if time.monotonic() > deadline:
                raise FunctionStartError(f"the {name} function did not start listening in 120 s")
            time.sleep(0.1)
        api.register_function(name, f"http://127.0.0.1:{port}", verify_jwt=verify_jwt)
        yield f"http://127.0.0.1:{port}"
    finally:
        if previous is not None:
            api.functions[name] = previous
        proc.terminate()
        proc.wait(10)
        log.close()


def send_http_request(method: str, url: str, headers: dict, body: bytes | None,
                      timeout_ms: int) -> dict[str, Any]:
    """One request as pg_net's worker sends it; the row net._http_response would get."""
    req = urllib.request.Request(url, data=body, headers=headers, method=method.upper())
    out: dict[str, Any] = {"status": None, "content": None, "headers": {}, "timed_out": False,
                           "error": None}
    try:
        with urllib.request.urlopen(req, timeout=timeout_ms / 1000) as res:
            out |= {"status": res.status, "content": res.read().decode(),
                    "headers": dict(res.headers.items())}
    except urllib.error.HTTPError as e:
        out |= {"status": e.code, "content": e.read().decode(), "headers": dict(e.headers.items())}
    except TimeoutError as e:
        out |= {"timed_out": True, "error": str(e)}
    except urllib.error.URLError as e:
        out["error"] = str(e.reason)
    return out


class PgNetWorker:
    """pg_net's background worker, running: every `poll_s` it takes the committed rows of
    net.http_request_queue and sends each on its own thread (pg_net sends concurrently),
    recording (queued id, when sent, status) in `sent`. For benchmarks; the tests deliver
    synchronously (conftest.deliver_http_requests)."""

    def __init__(self, dsn: str, poll_s: float = 0.01):
        self._dsn = dsn
        self._poll_s = poll_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._senders: list[threading.Thread] = []
        self.sent: list[tuple[int, float, int | None]] = []

    def __enter__(self) -> PgNetWorker:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        for t in self._senders:
            t.join()

    def _send(self, request_id: int, method: str, url: str, headers: dict, body: bytes | None,
              timeout_ms: int) -> None:
        at = time.monotonic()
        self.sent.append((request_id, at, send_http_request(method, url, headers, body,
                                                            timeout_ms)["status"]))

    def _run(self) -> None:
        with psycopg.connect(self._dsn, autocommit=True) as conn:
            while not self._stop.is_set():
                rows = conn.execute(
                    "delete from net.http_request_queue"
                    " returning id, method, url, headers, body, timeout_milliseconds"
                ).fetchall()
                for request_id, method, url, headers, body, timeout_ms in sorted(rows):
                    t = threading.Thread(target=self._send, args=(
                        request_id, method, url, headers,
                        bytes(body) if body is not None else None, timeout_ms))
                    t.start()
                    self._senders.append(t)
                self._stop.wait(self._poll_s)
