-- Intake's read models, updated in the same transaction as the events they follow.
CREATE TABLE communities (
    community_id text PRIMARY KEY,
    name         text NOT NULL,
    kind         int  NOT NULL,
    registered_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE households (
    household_id   text PRIMARY KEY,
    community_id   text NOT NULL REFERENCES communities,
    address_sealed bytea NOT NULL,
    segments       int[] NOT NULL,
    care_groups    int[] NOT NULL,
    registered_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX households_by_community ON households (community_id, household_id);

CREATE TABLE residents (
    resident_id      text PRIMARY KEY,
    household_id     text NOT NULL REFERENCES households,
    community_id     text NOT NULL,
    segment          int  NOT NULL,
    care_groups      int[] NOT NULL,
    name_sealed      bytea NOT NULL,
    phone_sealed     bytea NOT NULL,
    id_number_sealed bytea NOT NULL,
    erased           boolean NOT NULL DEFAULT false
);
CREATE INDEX residents_by_household ON residents (household_id);

CREATE TABLE campaigns (
    campaign_id     text PRIMARY KEY,
    community_id    text NOT NULL REFERENCES communities,
    title           text NOT NULL,
    starts_at       timestamptz NOT NULL,
    ends_at         timestamptz NOT NULL,
    whole_community boolean NOT NULL
);

CREATE TABLE campaign_households (
    campaign_id  text NOT NULL REFERENCES campaigns,
    household_id text NOT NULL,
    PRIMARY KEY (campaign_id, household_id)
);

CREATE TABLE demands (
    demand_id    text PRIMARY KEY,
    community_id text NOT NULL,
    household_id text NOT NULL,
    resident_id  text NOT NULL,
    channel      int  NOT NULL,
    urgency      int  NOT NULL,
    category     text NOT NULL,
    description  text NOT NULL,
    raised_at    timestamptz NOT NULL
);
CREATE INDEX demands_by_community ON demands (community_id, demand_id);
