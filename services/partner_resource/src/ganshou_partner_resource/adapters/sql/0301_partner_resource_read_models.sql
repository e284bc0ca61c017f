-- Partner-resource's read models, updated in the same transaction as their events.
-- Every entity's current view is one row: its protobuf view message plus the columns
-- that Get, List and scope checks filter on.
CREATE TABLE views (
    kind          text   NOT NULL,   -- partner | pairing | agreement | offering | delivery | programme | disbursement
    id            text   NOT NULL,
    partner_id    text   NOT NULL DEFAULT '',
    community_ids text[] NOT NULL DEFAULT '{}',
    extra         text   NOT NULL DEFAULT '',  -- a second filter: programme id, category…
    seq           bigserial,
    body          bytea  NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE INDEX views_by_partner ON views (kind, partner_id, id);
CREATE INDEX views_by_community ON views USING gin (community_ids);

CREATE TABLE offering_usage (
    offering_id text   NOT NULL,
    period      text   NOT NULL,
    used        bigint NOT NULL,
    PRIMARY KEY (offering_id, period)
);

-- What intake's events tell us: communities, and residents' community and segment, so
-- our events carry the dimensions their figures are cut by (no personal data).
CREATE TABLE known_communities (community_id text PRIMARY KEY);
CREATE TABLE known_residents (
    resident_id  text PRIMARY KEY,
    community_id text NOT NULL,
    household_id text NOT NULL,
    segment      int  NOT NULL,
    care_groups  int[] NOT NULL
);
