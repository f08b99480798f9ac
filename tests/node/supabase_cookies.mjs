// Write and read Supabase session cookies with the real @supabase/ssr, for stuckgen's tests.
//
// stdin: {"ops": [op, ...]}; stdout: [result, ...] as JSON, one result per op.
// Nothing here touches the network: every request the Supabase client makes goes to a
// fetch stand-in that answers the Auth API from the op itself (a sign-in, a refresh, a user).
//
//   {"op": "signin", url, options, jar, session, now}
//       -> {"set": [{name, value, options}], "setCookie": ["name=value; Path=/; ..."]}
//       The library signs in (POST /auth/v1/token?grant_type=password answered with `session`)
//       and writes its cookies through setAll; `jar` is what the browser already holds.
//   {"op": "refresh", url, options, jar, session, now}
//       -> same shape: getSession() finds the stored session expired at `now`, refreshes it
//       (answered with `session`), and rewrites the cookies, deleting chunks it no longer needs.
//   {"op": "read", url, options, header, now}
//       -> {"session": bool, "access_token": str|null, "refresh_attempted": bool, "error": str|null}
//       The library's own read path: createServerClient over parseCookieHeader(header),
//       then auth.getSession() at `now`. An expired session is refreshed, and the refresh is
//       refused (400 invalid_grant), so it reads as no session with refresh_attempted.
//
// `options` are createServerClient's options (auth.storageKey, cookieOptions.name,
// cookieEncoding) without cookies; `now` is epoch milliseconds (Date.now is set to it).

import { createServerClient, parseCookieHeader, serializeCookieHeader } from "@supabase/ssr";

const realNow = Date.now;

function json(status, body) {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
}

function standInFetch(op, seen) {
  return async (input, init) => {
    const url = new URL(typeof input === "string" ? input : input.url);
    seen.push(`${init?.method ?? "GET"} ${url.pathname}${url.search}`);
    const grant = url.searchParams.get("grant_type");
    if (url.pathname.endsWith("/auth/v1/token") && grant === "password" && op.op === "signin") {
      return json(200, op.session);
    }
    if (url.pathname.endsWith("/auth/v1/token") && grant === "refresh_token") {
      if (op.op === "refresh") return json(200, op.session);
      return json(400, { error: "invalid_grant", error_description: "Invalid Refresh Token: Refresh Token Not Found" });
    }
    if (url.pathname.endsWith("/auth/v1/user")) {
      return json(200, op.session?.user ?? { id: "00000000-0000-0000-0000-000000000000" });
    }
    return json(404, { error: "not_found" });
  };
}

// Realtime is never used; on Node 20 it needs a WebSocket class to be constructed at all.
class NoWebSocket {
  constructor() {
    throw new Error("no network in stuckgen's tests");
  }
}

function client(op, cookies, written, seen) {
  return createServerClient(op.url, "stand-in-anon-key", {
    ...(op.options ?? {}),
    global: { fetch: standInFetch(op, seen) },
    realtime: { transport: NoWebSocket },
    cookies: {
      getAll: () => cookies,
      setAll: (items) => {
        for (const item of items) written.push(item);
      },
    },
  });
}

function wrote(written) {
  return {
    set: written.map(({ name, value, options }) => ({ name, value, options })),
    setCookie: written.map(({ name, value, options }) => serializeCookieHeader(name, value, options)),
  };
}

async function run(op) {
  Date.now = () => (typeof op.now === "number" ? op.now : realNow());
  const written = [];
  const seen = [];
  try {
    if (op.op === "signin") {
      const supabase = client(op, op.jar ?? [], written, seen);
      const { error } = await supabase.auth.signInWithPassword({ email: "user@example.com", password: "x" });
      if (error) throw error;
      return wrote(written);
    }
    if (op.op === "refresh") {
      const supabase = client(op, op.jar ?? [], written, seen);
      const { error } = await supabase.auth.getSession();
      if (error) throw error;
      return wrote(written);
    }
    if (op.op === "read") {
      const supabase = client(op, parseCookieHeader(op.header ?? ""), written, seen);
      const { data, error } = await supabase.auth.getSession();
      return {
        session: Boolean(data?.session),
        access_token: data?.session?.access_token ?? null,
        refresh_attempted: seen.some((s) => s.includes("grant_type=refresh_token")),
        error: error ? String(error.message ?? error) : null,
      };
    }
    throw new Error(`unknown op ${op.op}`);
  } finally {
    Date.now = realNow;
  }
}

let input = "";
for await (const chunk of process.stdin) input += chunk;
const { ops } = JSON.parse(input);
const results = [];
for (const op of ops) results.push(await run(op));
process.stdout.write(JSON.stringify(results));
