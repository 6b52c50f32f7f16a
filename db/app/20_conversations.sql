-- Quire: conversations, their messages, the event log of streamed answers,
-- and the companion's tool sessions.
--
-- Needs: 00_prerequisites.sql, 10_documents.sql (public.set_updated_at()).
--
-- public.conversations  the owner lists, creates, renames, archives and
--                       deletes their own conversations.
-- public.chat_messages  one row per user question or assistant answer. The
--                       owner reads; only the companion (service role)
--                       writes. An answer's row is inserted as `streaming`
--                       before its first event and finished at the end.
-- public.chat_events    the append-only log of a streamed answer, `seq`
--                       increasing per message; what a second device
--                       follows live (see 40_realtime.sql) and backfills
--                       by seq. The owner reads; only the companion writes.
-- public.tool_sessions  opaque, short-lived tokens the agent's custom tool
--                       presents to the companion. RLS on and no policies:
--                       the service role only.
--
-- Decisions the design leaves open:
--  * Ownership is carried down by composite foreign keys (a message's owner is
--    its conversation's owner, an event's is its message's), so no writer can
--    put A's answer into B's conversation. Deleting a conversation deletes
--    its messages, events and tool sessions.
--  * Owners may insert only (id, owner_id, title) and update only (title,
--    archived_at): agent_session_id names a platform session that the
--    companion continues with the service key, so a user who could set it
--    could make the companion continue someone else's session.
--  * chat_messages.role is 'user' or 'assistant'; seq orders the messages of
--    a conversation and is unique within it.
--  * tool_sessions stores the sha-256 (hex) of the token, never the token.

create table if not exists public.conversations (
  id uuid primary key default gen_random_uuid(),
  owner_id uuid not null references auth.users (id) on delete cascade,
  title text check (char_length(title) <= 1024),
  -- The platform's public session id (`sess_…`), set by the companion.
  agent_session_id text unique check (char_length(agent_session_id) <= 255),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  archived_at timestamptz,
  unique (id, owner_id)
);
create index if not exists conversations_owner_id_idx on public.conversations (owner_id);

drop trigger if exists conversations_set_updated_at on public.conversations;
create trigger conversations_set_updated_at
  before update on public.conversations
  for each row execute function public.set_updated_at();

create table if not exists public.chat_messages (
  id uuid primary key default gen_random_uuid(),
  conversation_id uuid not null,
  owner_id uuid not null references auth.users (id) on delete cascade,
  seq integer not null check (seq >= 0),
  role text not null check (role in ('user', 'assistant')),
  status text not null default 'complete'
    check (status in ('streaming', 'complete', 'stopped', 'failed')),
  content text not null default '',
  citations jsonb not null default '[]'::jsonb check (jsonb_typeof(citations) = 'array'),
  -- The platform's public run id (`run_…`).
  run_id text,
  error text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  foreign key (conversation_id, owner_id)
    references public.conversations (id, owner_id) on delete cascade,
  unique (conversation_id, seq),
  unique (id, conversation_id, owner_id)
);
create index if not exists chat_messages_owner_id_idx on public.chat_messages (owner_id);

drop trigger if exists chat_messages_set_updated_at on public.chat_messages;
create trigger chat_messages_set_updated_at
  before update on public.chat_messages
  for each row execute function public.set_updated_at();

create table if not exists public.chat_events (
  id uuid primary key default gen_random_uuid(),
  conversation_id uuid not null,
  message_id uuid not null,
  owner_id uuid not null references auth.users (id) on delete cascade,
  seq integer not null check (seq >= 0),
  kind text not null
    check (kind in ('delta', 'context', 'tool_call', 'tool_result', 'status', 'error', 'complete')),
  payload jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  foreign key (message_id, conversation_id, owner_id)
    references public.chat_messages (id, conversation_id, owner_id) on delete cascade,
  unique (message_id, seq)
);
create index if not exists chat_events_owner_id_idx on public.chat_events (owner_id);

create table if not exists public.tool_sessions (
  token_hash text primary key check (token_hash ~ '^[0-9a-f]{64}$'),
  owner_id uuid not null references auth.users (id) on delete cascade,
  conversation_id uuid not null,
  expires_at timestamptz not null,
  created_at timestamptz not null default now(),
  foreign key (conversation_id, owner_id)
    references public.conversations (id, owner_id) on delete cascade
);
create index if not exists tool_sessions_conversation_id_idx on public.tool_sessions (conversation_id);
create index if not exists tool_sessions_expires_at_idx on public.tool_sessions (expires_at);

alter table public.conversations enable row level security;
alter table public.chat_messages enable row level security;
alter table public.chat_events enable row level security;
alter table public.tool_sessions enable row level security;

drop policy if exists owner_reads_own_conversations on public.conversations;
create policy owner_reads_own_conversations on public.conversations
  for select to authenticated
  using (owner_id = (select auth.uid()));

drop policy if exists owner_creates_own_conversations on public.conversations;
create policy owner_creates_own_conversations on public.conversations
  for insert to authenticated
  with check (owner_id = (select auth.uid()));

drop policy if exists owner_updates_own_conversations on public.conversations;
create policy owner_updates_own_conversations on public.conversations
  for update to authenticated
  using (owner_id = (select auth.uid()))
  with check (owner_id = (select auth.uid()));

drop policy if exists owner_deletes_own_conversations on public.conversations;
create policy owner_deletes_own_conversations on public.conversations
  for delete to authenticated
  using (owner_id = (select auth.uid()));

drop policy if exists owner_reads_own_chat_messages on public.chat_messages;
create policy owner_reads_own_chat_messages on public.chat_messages
  for select to authenticated
  using (owner_id = (select auth.uid()));

drop policy if exists owner_reads_own_chat_events on public.chat_events;
create policy owner_reads_own_chat_events on public.chat_events
  for select to authenticated
  using (owner_id = (select auth.uid()));

revoke all on public.conversations, public.chat_messages, public.chat_events, public.tool_sessions
  from public, anon, authenticated, service_role;
grant select, delete on public.conversations to authenticated;
grant insert (id, owner_id, title) on public.conversations to authenticated;
grant update (title, archived_at) on public.conversations to authenticated;
grant select on public.chat_messages, public.chat_events to authenticated;
grant all on public.conversations, public.chat_messages, public.chat_events, public.tool_sessions
  to service_role;
