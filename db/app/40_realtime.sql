-- Quire: live updates over Realtime, on each user's private topic
-- `user:<uid>` (clients join `realtime:user:<uid>` with `private: true`).
--
-- Needs: 00_prerequisites.sql (Powabase realtime schema: realtime.messages,
-- realtime.topic(), realtime.send()), 10_documents.sql,
-- 20_conversations.sql.
--
-- Broadcasts (all `private = true`, topic 'user:' || owner_id):
--   every chat_events insert  event = the event's kind, payload
--                             {message_id, conversation_id, seq, kind,
--                              payload, created_at}
--   documents insert, and     event 'document_status', payload
--   updates of status, error, {document_id, status, error, title,
--   title or page_count       page_count, byte_size, updated_at}
--   documents delete          event 'document_deleted', payload
--                             {document_id, status: 'deleted'}
-- Payloads carry no "id" key, so realtime.send adds a fresh one per message.
--
-- The trigger functions are SECURITY DEFINER (search_path = '', everything
-- schema-qualified) because the writer (the companion as service_role, or a
-- user deleting a document) must not need INSERT on realtime.messages: their
-- owner must be able to insert there past RLS. On Powabase/Supabase that is
-- `postgres` (BYPASSRLS); in the sandbox it is the superuser that applies
-- this file. realtime.send never raises: a failed broadcast is a WARNING and
-- the row is still written (followers catch up from the tables).
--
-- Joining: authenticated users may read (so join) only their own topic and
-- only the broadcast extension. There is no INSERT policy: no client can
-- publish on any topic, their own included; only these triggers write.

create or replace function public.broadcast_chat_event() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  perform realtime.send(
    pg_catalog.jsonb_build_object(
      'message_id', new.message_id,
      'conversation_id', new.conversation_id,
      'seq', new.seq,
      'kind', new.kind,
      'payload', new.payload,
      'created_at', new.created_at
    ),
    new.kind,
    'user:' || new.owner_id::text,
    true
  );
  return null;
end;
$$;
revoke all on function public.broadcast_chat_event() from public, anon, authenticated, service_role;

drop trigger if exists chat_events_broadcast on public.chat_events;
create trigger chat_events_broadcast
  after insert on public.chat_events
  for each row execute function public.broadcast_chat_event();

create or replace function public.broadcast_document_status() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if tg_op = 'DELETE' then
    perform realtime.send(
      pg_catalog.jsonb_build_object('document_id', old.id, 'status', 'deleted'),
      'document_deleted',
      'user:' || old.owner_id::text,
      true
    );
  else
    perform realtime.send(
      pg_catalog.jsonb_build_object(
        'document_id', new.id,
        'status', new.status,
        'error', new.error,
        'title', new.title,
        'page_count', new.page_count,
        'byte_size', new.byte_size,
        'updated_at', new.updated_at
      ),
      'document_status',
      'user:' || new.owner_id::text,
      true
    );
  end if;
  return null;
end;
$$;
revoke all on function public.broadcast_document_status() from public, anon, authenticated, service_role;

drop trigger if exists documents_broadcast_insert on public.documents;
create trigger documents_broadcast_insert
  after insert on public.documents
  for each row execute function public.broadcast_document_status();

drop trigger if exists documents_broadcast_update on public.documents;
create trigger documents_broadcast_update
  after update of status, error, title, page_count on public.documents
  for each row
  when (old.status is distinct from new.status
        or old.error is distinct from new.error
        or old.title is distinct from new.title
        or old.page_count is distinct from new.page_count)
  execute function public.broadcast_document_status();

drop trigger if exists documents_broadcast_delete on public.documents;
create trigger documents_broadcast_delete
  after delete on public.documents
  for each row execute function public.broadcast_document_status();

drop policy if exists user_joins_own_topic on realtime.messages;
create policy user_joins_own_topic on realtime.messages
  for select to authenticated
  using (
    (select realtime.topic()) = 'user:' || (select auth.uid())::text
    and realtime.messages.extension = 'broadcast'
  );
