-- Personal-data keys, one per data subject, kept apart from the events. Deleting a row
-- erases the person everywhere their data was encrypted (events, Kafka, backups of
-- either); each key is wrapped with the service's master key, so a dump of this table
-- alone reveals nothing.
CREATE TABLE subject_keys (
    subject_id  text        PRIMARY KEY,
    wrapped_key bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE erased_subjects (
    subject_id text        PRIMARY KEY,
    erased_at  timestamptz NOT NULL DEFAULT now(),
    erased_by  text        NOT NULL
);

-- Every read of personal data: who, in which role, whose data, which fields, and why.
CREATE TABLE personal_data_access (
    id          bigserial   PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text        NOT NULL,
    actor_role  text        NOT NULL,
    subject_id  text        NOT NULL,
    fields      text[]      NOT NULL,
    purpose     text        NOT NULL,
    correlation_id text     NOT NULL DEFAULT ''
);
CREATE INDEX personal_data_access_subject ON personal_data_access (subject_id, at);
