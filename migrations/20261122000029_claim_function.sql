-- The ingest gate's grouped claim as a function planned once per session. As a plain statement
-- PostgreSQL planned it anew at every group (its arrays' sizes make each custom plan look
-- cheaper than the generic one): a third of PostgreSQL's time under single-rating load. The
-- function's own `plan_cache_mode` holds only while it runs, so nothing else changes, and it
-- needs no session setting (which a transaction-pooling PgBouncer would refuse or leak).
--
-- Per key, in input order: the rating id it inserted, the one it resumed (a released claim, or a
-- pending one older than `stale`), and the holder this statement's snapshot saw with whether it
-- was pending (docs: Store::claim_ratings). One statement, so one transaction.
CREATE FUNCTION hcp_claim_ratings(recs text[], stages text[], assess int2[], ids uuid[], stale interval)
RETURNS TABLE (inserted_id uuid, resumed_id uuid, held_id uuid, held_pending boolean)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
AS $$
BEGIN
    RETURN QUERY
    WITH t AS (SELECT * FROM unnest(recs, stages, assess, ids) WITH ORDINALITY AS u(rec, stage_name, assess_no, id, n)),
         k AS (SELECT DISTINCT t.rec, t.stage_name, t.assess_no FROM t),
         ins AS (
        INSERT INTO rating_claims AS c (service_record_no, stage, assess_number, rating_id, state)
        SELECT t.rec, t.stage_name, t.assess_no, t.id, 'pending' FROM t ORDER BY t.n
        ON CONFLICT DO NOTHING
        RETURNING c.service_record_no, c.stage, c.assess_number, c.rating_id),
         res AS (
        UPDATE rating_claims c SET state = 'pending', claimed_at = now()
          FROM k
         WHERE c.service_record_no = k.rec AND c.stage = k.stage_name AND c.assess_number = k.assess_no
           AND (c.state = 'released' OR (c.state = 'pending' AND c.claimed_at < now() - stale))
        RETURNING c.service_record_no, c.stage, c.assess_number, c.rating_id),
         old AS (
        SELECT c.service_record_no, c.stage, c.assess_number, c.rating_id, c.state
          FROM k JOIN rating_claims c
            ON c.service_record_no = k.rec AND c.stage = k.stage_name AND c.assess_number = k.assess_no)
    SELECT ins.rating_id, res.rating_id, old.rating_id, old.state = 'pending'
      FROM t
      LEFT JOIN ins ON ins.service_record_no = t.rec AND ins.stage = t.stage_name AND ins.assess_number = t.assess_no
      LEFT JOIN res ON res.service_record_no = t.rec AND res.stage = t.stage_name AND res.assess_number = t.assess_no
      LEFT JOIN old ON old.service_record_no = t.rec AND old.stage = t.stage_name AND old.assess_number = t.assess_no
     ORDER BY t.n;
END $$;
