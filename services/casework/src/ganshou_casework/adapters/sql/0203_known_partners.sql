-- The partners casework may assign a case to, from partner-resource's events (a consumer of
-- its own, "casework-partners", which reads that history from its start).
CREATE TABLE known_partners (
    partner_id text PRIMARY KEY,
    name       text NOT NULL,
    left_at    timestamptz
);
