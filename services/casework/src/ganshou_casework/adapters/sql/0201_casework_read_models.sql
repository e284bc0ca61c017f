-- Casework's read models, updated in the same transaction as the events they follow.
CREATE TABLE cases (
    case_id      text PRIMARY KEY,
    demand_id    text NOT NULL UNIQUE,      -- one demand, one case
    community_id text NOT NULL,
    status       int  NOT NULL,
    track        int  NOT NULL DEFAULT 0,
    partner_id   text NOT NULL DEFAULT '',
    opened_at    timestamptz NOT NULL,
    broken_promises int NOT NULL DEFAULT 0
);
CREATE INDEX cases_by_community ON cases (community_id, case_id);

-- The promises as durable timers: the worker records PromiseBroken for every pending row
-- whose due time has passed, even if the service was down across it.
CREATE TABLE promise_timers (
    case_id text NOT NULL,
    kind    int  NOT NULL,
    due_at  timestamptz NOT NULL,
    state   text NOT NULL DEFAULT 'pending',
    PRIMARY KEY (case_id, kind)
);
CREATE INDEX promise_timers_pending ON promise_timers (due_at) WHERE state = 'pending';

-- Households known from intake's events, for deliberations' eligible voters.
CREATE TABLE known_households (
    household_id text PRIMARY KEY,
    community_id text NOT NULL
);
CREATE INDEX known_households_by_community ON known_households (community_id);

CREATE TABLE deliberations (
    deliberation_id text PRIMARY KEY,
    community_id    text NOT NULL,
    topic           text NOT NULL,
    eligible        int  NOT NULL,
    decided         boolean NOT NULL DEFAULT false,
    decision        text NOT NULL DEFAULT ''
);

CREATE TABLE deliberation_households (
    deliberation_id text NOT NULL,
    household_id    text NOT NULL,
    PRIMARY KEY (deliberation_id, household_id)
);

-- One household, one vote: the key refuses a second.
CREATE TABLE votes (
    deliberation_id text NOT NULL,
    household_id    text NOT NULL,
    choice          int  NOT NULL,
    PRIMARY KEY (deliberation_id, household_id)
);

CREATE TABLE appraisals (
    appraisal_id      text PRIMARY KEY,
    community_id      text NOT NULL,
    period            text NOT NULL,
    subject           text NOT NULL,
    representative_id text NOT NULL,
    score             int  NOT NULL,
    UNIQUE (community_id, period, subject, representative_id)
);

CREATE TABLE posts (
    post_id      text PRIMARY KEY,
    community_id text NOT NULL,
    kind         int  NOT NULL,
    holder       text NOT NULL,
    title        text NOT NULL
);
CREATE INDEX posts_by_community ON posts (community_id, post_id);
