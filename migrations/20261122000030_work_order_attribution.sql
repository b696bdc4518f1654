-- Issue 26: a work order carries its rating's attributed hall, window and staff member, so the
-- monthly report and the verification counts group orders by them without reading `ratings`
-- (a look-up by rating id alone reads every month's partition: 0.9-1.2 s a report over 5.4 M
-- stored ratings). Kept equal to the rating's by the aggregator (when it opens the order) and by
-- re-attribution (when it changes the rating's). The order's own window_id and staff_id stay
-- whom it is assigned to.
ALTER TABLE work_orders
    ADD COLUMN attr_hall_id   text,
    ADD COLUMN attr_window_id text,
    ADD COLUMN attr_staff_id  text;

UPDATE work_orders o
   SET attr_hall_id = r.attr_hall_id, attr_window_id = r.attr_window_id, attr_staff_id = r.attr_staff_id
  FROM rating_keys k
  JOIN ratings r ON r.rating_id = k.rating_id AND r.rated_at = k.rated_at
 WHERE k.rating_id = o.rating_id;
