-- Whose a logged call's sealed caller phone is: erasing a resident erases the calls that
-- name them (and, with the household's last resident, those naming the household).
CREATE TABLE call_people (
    call_id      text PRIMARY KEY,
    household_id text NOT NULL,
    resident_id  text NOT NULL
);
CREATE INDEX call_people_by_resident ON call_people (resident_id);
CREATE INDEX call_people_by_household ON call_people (household_id);
-- Calls logged before this table are read from their events once, at intake's next start
-- (call_people.backfill): this row says whether that is still to do.
CREATE TABLE call_people_backfill (pending boolean NOT NULL);
INSERT INTO call_people_backfill
    SELECT EXISTS (SELECT 1 FROM events WHERE event_type = 'ganshou.intake.v1.HotlineCallReceived');
