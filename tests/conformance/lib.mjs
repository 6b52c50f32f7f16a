// Shared setup for the conformance suites: clients built exactly as an app would build them,
// pointed at the sandbox that the Rust harness started (QUIRE_API_URL, QUIRE_ANON_KEY,
// QUIRE_SERVICE_KEY).
import { createClient } from '@supabase/supabase-js';
import { randomUUID } from 'node:crypto';
// Node 20 has no global WebSocket; realtime-js takes a transport (supabase-js docs, Node < 22).
import WebSocket from 'ws';

export const url = need('QUIRE_API_URL');
export const anonKey = need('QUIRE_ANON_KEY');
export const serviceKey = need('QUIRE_SERVICE_KEY');

function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run these through \`cargo xtask test\``);
  return v;
}

/** An in-memory storage so auth-js can keep a session (and a PKCE verifier) in node. */
export function memoryStorage() {
  const m = new Map();
  return {
    getItem: (k) => (m.has(k) ? m.get(k) : null),
    setItem: (k, v) => void m.set(k, v),
    removeItem: (k) => void m.delete(k),
  };
}

function realtimeVsn() {
  const vsn = process.env.QUIRE_REALTIME_VSN;
  return vsn ? { vsn } : {};
}

/** A client as a desktop or web app builds it: the anon key, a session kept in memory. */
export function client(options = {}) {
  return createClient(url, anonKey, {
    auth: { storage: memoryStorage(), persistSession: true, autoRefreshToken: false, ...options.auth },
    // QUIRE_REALTIME_VSN=1.0.0 runs Realtime on vsn 1.0.0 (JSON objects), as Quire's core speaks it;
    // unset, supabase-js uses its default (2.0.0, JSON arrays). The Rust runner runs both.
    realtime: { transport: WebSocket, ...realtimeVsn(), ...options.realtime },
  });
}

/** A backend client holding the service key. */
export function service() {
  return createClient(url, serviceKey, {
    auth: { persistSession: false, autoRefreshToken: false },
    realtime: { transport: WebSocket },
  });
}

export function email(tag) {
  return `${tag}-${randomUUID().slice(0, 8)}@example.test`;
}

/** Signs a fresh user up and returns `{ sb, user, session, email, password }`. */
export async function signedIn(tag) {
  const sb = client();
  const address = email(tag);
  const password = 'correct horse battery staple';
  const { data, error } = await sb.auth.signUp({ email: address, password });
  if (error) throw error;
  return { sb, user: data.user, session: data.session, email: address, password };
}
