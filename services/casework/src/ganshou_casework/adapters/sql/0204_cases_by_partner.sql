-- ListCases by partner: a partner's staff list the cases assigned to them, newest first.
CREATE INDEX cases_by_partner_newest ON cases (partner_id, opened_at DESC, case_id DESC) WHERE partner_id <> '';
