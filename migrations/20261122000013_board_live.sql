-- The live board: every transaction that changes what a board shows (aggregates, work orders,
-- alerts) sends one NOTIFY on 'hcp_board' when it commits (statement triggers; PostgreSQL
-- folds identical notifications of one transaction into one). Boards re-read on it.
CREATE FUNCTION notify_board() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('hcp_board', TG_TABLE_NAME);
    RETURN NULL;
END
$$;

CREATE TRIGGER rating_aggregates_notify_board AFTER INSERT OR UPDATE OR DELETE ON rating_aggregates
    FOR EACH STATEMENT EXECUTE FUNCTION notify_board();
CREATE TRIGGER work_orders_notify_board AFTER INSERT OR UPDATE ON work_orders
    FOR EACH STATEMENT EXECUTE FUNCTION notify_board();
CREATE TRIGGER alerts_notify_board AFTER INSERT OR UPDATE OR DELETE ON alerts
    FOR EACH STATEMENT EXECUTE FUNCTION notify_board();

-- The board's top 差评 tags read only the bad ratings of a period.
CREATE INDEX ratings_bad_rated_at ON ratings (rated_at) WHERE grade <= 2;
