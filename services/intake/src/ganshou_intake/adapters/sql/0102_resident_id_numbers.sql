-- One person, one resident: the keyed digest of each resident's ID number (pii.keyed_digest,
-- so the table alone tells nothing), deleted when the resident is erased. Residents registered
-- before this table have no row: their ID numbers are not checked against.
CREATE TABLE resident_id_numbers (
    digest      bytea PRIMARY KEY,
    resident_id text NOT NULL
);
CREATE INDEX resident_id_numbers_by_resident ON resident_id_numbers (resident_id);
