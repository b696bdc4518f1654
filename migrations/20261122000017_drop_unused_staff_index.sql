-- Every index on ratings is paid by every insert (the aggregator's largest statement).
-- ratings_attr_staff (attr_staff_id, rated_at) is read by no query any more: the anti-gaming
-- staff probe walks ratings_staff_top_grades (migration 16), and nothing else filters ratings by
-- the attributed staff member (staff statistics come from rating_aggregates).
-- (Folding ratings_device_time and ratings_device_top_grades into one index was tried and not
-- kept: without statistics the top-grade probe then sorts every press of the burst window.)
DROP INDEX IF EXISTS ratings_attr_staff;
