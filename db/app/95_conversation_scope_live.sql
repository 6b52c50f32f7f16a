-- Quire: a conversation's scope reaches the owner's other devices live
-- (issue 17, item 1).
--
-- Needs: 40_realtime.sql (the `user:<uid>` topic and its policy),
-- 92_conversation_scope.sql (conversations.document_ids).
--
-- Broadcasts (`private = true`, topic 'user:' || owner_id):
--   conversations updates     event 'conversation_scope', payload
--   that change document_ids  {conversation_id, document_ids, updated_at}
--
-- As in 40_realtime.sql: SECURITY DEFINER (the writer, a user changing their
-- own scope, must not need INSERT on realtime.messages), the payload has no
-- "id" key, and realtime.send never raises (a device that misses it reads
-- the scope with the conversation when it opens it).

create or replace function public.broadcast_conversation_scope() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  perform realtime.send(
    pg_catalog.jsonb_build_object(
      'conversation_id', new.id,
      'document_ids', pg_catalog.to_jsonb(new.document_ids),
      'updated_at', new.updated_at
    ),
    'conversation_scope',
    'user:' || new.owner_id::text,
    true
  );
  return null;
end;
$$;
revoke all on function public.broadcast_conversation_scope() from public, anon, authenticated, service_role;

drop trigger if exists conversations_broadcast_scope on public.conversations;
create trigger conversations_broadcast_scope
  after update of document_ids on public.conversations
  for each row
  when (old.document_ids is distinct from new.document_ids)
  execute function public.broadcast_conversation_scope();
