-- The board's split rows: per reach a board can show (everything 'all:all', a department
-- 'department:<id>', a region at any level 'region:<code>') and Beijing day, the grade counts by
-- channel, by stage and by tag. Kept by the same deltas as rating_aggregates (new ratings,
-- follow-ups, upheld appeals, re-attribution), so a board reads rollups only: its cost does not
-- grow with the ratings stored.
CREATE TABLE rating_splits (
    reach      text        NOT NULL,
    day_start  timestamptz NOT NULL,
    dimension  text        NOT NULL CHECK (dimension IN ('channel', 'stage', 'tag')),
    value      text        NOT NULL,
    n1         bigint      NOT NULL DEFAULT 0,
    n2         bigint      NOT NULL DEFAULT 0,
    n3         bigint      NOT NULL DEFAULT 0,
    n4         bigint      NOT NULL DEFAULT 0,
    n5         bigint      NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (reach, dimension, day_start, value)
);

-- The rows of the ratings stored so far, counted as rating_aggregates counts them (not replaced
-- by a follow-up, not excluded by an upheld appeal; the default policy counts flagged ratings).
INSERT INTO rating_splits (reach, day_start, dimension, value, n1, n2, n3, n4, n5)
SELECT s.reach,
       date_trunc('day', r.rated_at AT TIME ZONE INTERVAL '08:00') AT TIME ZONE INTERVAL '08:00',
       d.dimension, d.value,
       count(*) FILTER (WHERE r.grade = 1), count(*) FILTER (WHERE r.grade = 2),
       count(*) FILTER (WHERE r.grade = 3), count(*) FILTER (WHERE r.grade = 4),
       count(*) FILTER (WHERE r.grade = 5)
  FROM ratings r
 CROSS JOIN LATERAL unnest(r.agg_scopes) AS s(reach)
 CROSS JOIN LATERAL (SELECT 'channel', r.channel UNION ALL SELECT 'stage', r.stage
                     UNION ALL SELECT 'tag', t FROM unnest(r.tags) AS t) AS d(dimension, value)
 WHERE r.excluded_at IS NULL AND r.superseded_by IS NULL
   AND (s.reach = 'all:all' OR s.reach LIKE 'department:%' OR s.reach LIKE 'region:%')
 GROUP BY 1, 2, 3, 4;

-- No trigger of its own: every change here comes with a change to rating_aggregates in the same
-- transaction, which notifies the boards.

-- The board's top 差评 tags now come from rating_splits.
DROP INDEX ratings_bad_rated_at;

-- Rankings sum one scope's day rows of a month: without this index that read every row of the
-- scope ever written (the primary key leads with scope_id after scope).
CREATE INDEX rating_aggregates_scope_width_bucket ON rating_aggregates (scope, width, bucket_start);

-- Work-order timeliness reads the open orders (work_orders_open_due) and the orders opened
-- since the month began, not every order ever opened.
CREATE INDEX work_orders_opened_at ON work_orders (opened_at);
