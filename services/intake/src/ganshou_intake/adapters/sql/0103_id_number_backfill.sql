-- Residents registered before 0102 claim their ID numbers once, at intake's next start
-- (id_numbers.backfill): this row says whether that is still to do.
CREATE TABLE id_number_backfill (pending boolean NOT NULL);
INSERT INTO id_number_backfill SELECT EXISTS (SELECT 1 FROM residents);
