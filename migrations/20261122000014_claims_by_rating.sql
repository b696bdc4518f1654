-- Ingest marks a claim accepted (or released) by its rating id after the broker's answer. Without
-- an index that was a scan of every claim ever made, per request: `hcp bench` measured single
-- POSTs falling to 557/s (p50 111 ms) with 140 000 claims stored.
CREATE INDEX rating_claims_rating_id ON rating_claims (rating_id);
