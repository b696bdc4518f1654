-- Evaluation dimensions (评价维度): besides the overall grade, a rating may grade each dimension
-- its channel offers (深圳实施办法: "在总体评价的基础上,根据不同渠道场景,增加业务评价、服务评价等评价维度").

-- The catalogue, kept in the directory like the tags: a dimension's class decides whom its
-- grade concerns (conduct: whoever served; process: the item's department; platform: the
-- platform), its channels where it is offered.
CREATE TABLE dimensions (
    code       text PRIMARY KEY,
    name       text NOT NULL,
    class      text NOT NULL CHECK (class IN ('conduct', 'process', 'platform')),
    channels   text[] NOT NULL CHECK (cardinality(channels) > 0),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER dimensions_bump_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON dimensions
    FOR EACH STATEMENT EXECUTE FUNCTION bump_directory_version();

-- The defaults (docs/domain.md §2): windows and terminals (and the links citizens open from
-- them) 服务态度 / 办事效率 / 业务水平; online 事项 / 办事指南 / 平台体验; the hotline 接听服务 /
-- 答复质量. Operators change them through the directory like any row.
INSERT INTO dimensions (code, name, class, channels) VALUES
    ('service_attitude', '服务态度', 'conduct', ARRAY['window_evaluator', 'self_service_terminal', 'qr_code', 'sms']),
    ('efficiency', '办事效率', 'conduct', ARRAY['window_evaluator', 'self_service_terminal', 'qr_code', 'sms']),
    ('competence', '业务水平', 'conduct', ARRAY['window_evaluator', 'self_service_terminal', 'qr_code', 'sms']),
    ('matter', '事项', 'process', ARRAY['web', 'app', 'mini_program']),
    ('guide', '办事指南', 'process', ARRAY['web', 'app', 'mini_program']),
    ('platform_experience', '平台体验', 'platform', ARRAY['web', 'app', 'mini_program']),
    ('call_answering', '接听服务', 'conduct', ARRAY['hotline']),
    ('reply_quality', '答复质量', 'process', ARRAY['hotline'])
ON CONFLICT DO NOTHING;

-- A rating's dimension grades ({"code": grade}) and, like agg_scopes, exactly the dimension rows
-- it was counted in ('code/scope:id'), so taking it out (follow-up, upheld appeal,
-- re-attribution) subtracts exactly what was added.
ALTER TABLE ratings
    ADD COLUMN dimensions jsonb  NOT NULL DEFAULT '{}',
    ADD COLUMN dim_scopes text[] NOT NULL DEFAULT '{}';

-- Dimension grade counts per (scope, id, Beijing day, dimension). Kept by the same deltas, in the
-- same transactions, as rating_aggregates; no trigger of its own: every change here comes with a
-- change to rating_aggregates, which notifies the boards.
CREATE TABLE rating_dimension_aggregates (
    scope      text        NOT NULL,
    scope_id   text        NOT NULL,
    day_start  timestamptz NOT NULL,
    dimension  text        NOT NULL,
    n1         bigint      NOT NULL DEFAULT 0,
    n2         bigint      NOT NULL DEFAULT 0,
    n3         bigint      NOT NULL DEFAULT 0,
    n4         bigint      NOT NULL DEFAULT 0,
    n5         bigint      NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, scope_id, day_start, dimension)
);
-- Reports read one scope's units over a month.
CREATE INDEX rating_dimension_aggregates_scope_day ON rating_dimension_aggregates (scope, day_start);
