-- One person, one resident: the keyed digest of each resident's ID number (pii.keyed_digest,
-- so the table alone tells nothing), deleted when the resident is erased. Residents registered
-- before this table claim theirs at intake's next start (0103).
CREATE TABLE resident_id_numbers (
    digest      bytea PRIMARY KEY,
    resident_id text NOT NULL
);
CREATE INDEX resident_id_numbers_by_resident ON resident_id_numbers (resident_id);
