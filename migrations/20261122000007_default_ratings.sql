-- Default ratings (Guangdong 2019: a service not rated within 7 natural days counts as 基本满意,
-- channel "system default", pf = 7), per region like the deadlines. NULL turns it off.
ALTER TABLE deadline_policies
    ADD COLUMN default_rating_days integer DEFAULT 7 CHECK (default_rating_days BETWEEN 1 AND 30);
