-- The relay polls the outbox instead of being woken by NOTIFY. A transaction that has
-- notified takes one database-wide lock at commit and holds it through its WAL flush
-- (PostgreSQL's async.c: notifications are queued in commit order), so every command's
-- commit queued behind the one before: no two commits shared a disk flush.
DROP TRIGGER IF EXISTS outbox_notify ON outbox;
DROP FUNCTION IF EXISTS notify_outbox();
