-- ListCases town-wide: a town admin, an auditor or a hotline operator lists every community's cases, newest first.
CREATE INDEX cases_newest ON cases (opened_at DESC, case_id DESC);
