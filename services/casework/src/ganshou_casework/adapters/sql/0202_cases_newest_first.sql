-- ListCases pages a community's cases newest first.
DROP INDEX IF EXISTS cases_by_community;
CREATE INDEX cases_by_community_newest ON cases (community_id, opened_at DESC, case_id DESC);
