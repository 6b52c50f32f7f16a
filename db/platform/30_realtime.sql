-- Powabase platform emulation: the `realtime` schema of Realtime (v2.65).
--
-- What it is: `realtime.messages`, the table private-channel authorization
-- and broadcast-from-the-database go through, with `realtime.topic()` and
-- `realtime.send()` as upstream defines them (Realtime's
-- priv/repo/tenant_schema; see docs/platform/supabase.md §2.8, §2.9).
-- Grants as upstream: select/insert/update to the API roles, RLS on,
-- no default policies: apps add SELECT policies for who may join a private
-- topic and INSERT policies for who may publish to one.
-- Needs: 00_roles.sql. Applied by a superuser.
--
-- Differences from upstream, all sandbox plumbing:
--  * No daily partitioning (upstream partitions by inserted_at and drops
--    partitions older than ~72 h). Rows stay until someone deletes them.
--  * Upstream's server learns of new rows through logical replication. The
--    sandbox's server instead LISTENs on channel `realtime_messages`; an
--    AFTER INSERT trigger sends {"id","topic","private"} there (ids, not
--    bodies: the server reads the row, and NOTIFY payloads are capped at
--    8000 bytes). Notifications arrive in commit order.
--  * To catch up after its own connection drops, the server uses
--    `sandbox_xid`, the inserting transaction's id, which unlike a sequence
--    value tells which rows may still be about to commit. Keep the
--    pg_snapshot taken with the last read (`select pg_current_snapshot(), …`
--    in the same statement); the rows committed since are exactly
--      where sandbox_xid >= pg_snapshot_xmin($snap)
--        and not pg_visible_in_snapshot(sandbox_xid, $snap)
--    and the index on sandbox_xid serves that. `sandbox_seq` orders those
--    rows as they were inserted (several sends in one transaction share
--    their xid and their inserted_at).

create schema if not exists realtime authorization supabase_realtime_admin;
grant usage on schema realtime to anon, authenticated, service_role;

set role supabase_realtime_admin;

create table if not exists realtime.messages (
  id uuid not null default gen_random_uuid(),
  topic text not null,
  extension text not null,
  payload jsonb,
  event text,
  private boolean default false,
  inserted_at timestamp not null default now(),
  updated_at timestamp not null default now(),
  sandbox_xid xid8 not null default pg_current_xact_id(),
  sandbox_seq bigint generated always as identity,
  primary key (id, inserted_at)
);
-- Clusters created before sandbox_seq existed.
alter table realtime.messages
  add column if not exists sandbox_seq bigint generated always as identity;
create index if not exists messages_topic_inserted_at_idx
  on realtime.messages (topic, inserted_at desc);
create index if not exists messages_sandbox_xid_idx on realtime.messages (sandbox_xid);

alter table realtime.messages enable row level security;
grant select, insert, update on realtime.messages to anon, authenticated, service_role;

create or replace function realtime.topic() returns text
language sql stable
as $$
  select nullif(current_setting('realtime.topic', true), '')::text
$$;

-- Not SECURITY DEFINER: it inserts as the calling role, so INSERT policies on
-- realtime.messages apply to it, and every failure (policy, missing
-- privilege, anything) becomes a WARNING: callers never see send() fail.
create or replace function realtime.send(
  payload jsonb,
  event text,
  topic text,
  private boolean default true
) returns void
language plpgsql
as $$
declare
  generated_id uuid;
  final_payload jsonb;
begin
  begin
    generated_id := gen_random_uuid();

    if payload ? 'id' then
      final_payload := payload;
    else
      final_payload := jsonb_set(payload, '{id}', to_jsonb(generated_id));
    end if;

    execute format('set local realtime.topic to %L', topic);

    insert into realtime.messages (id, payload, event, topic, private, extension)
    values (generated_id, final_payload, event, topic, private, 'broadcast');
  exception
    when others then
      raise warning 'ErrorSendingBroadcastMessage: %', SQLERRM;
  end;
end;
$$;

grant execute on function realtime.topic(), realtime.send(jsonb, text, text, boolean)
  to anon, authenticated, service_role;

create or replace function realtime.sandbox_notify_message() returns trigger
language plpgsql
as $$
begin
  perform pg_notify(
    'realtime_messages',
    json_build_object('id', new.id, 'topic', new.topic, 'private', new.private)::text
  );
  return null;
end;
$$;

drop trigger if exists sandbox_notify_message on realtime.messages;
create trigger sandbox_notify_message
  after insert on realtime.messages
  for each row execute function realtime.sandbox_notify_message();

reset role;
