-- A claim whose produce failed is kept as 'released' with its rating id (the record may still
-- reach the broker after the timeout): the retry resumes it under the same id, so whichever
-- copy is stored is the rating the client was told about.
ALTER TABLE rating_claims DROP CONSTRAINT rating_claims_state_check;
ALTER TABLE rating_claims ADD CONSTRAINT rating_claims_state_check CHECK (state IN ('pending', 'accepted', 'released'));
