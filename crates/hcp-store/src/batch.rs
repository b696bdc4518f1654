//! The aggregator's unit of work: one consumed batch, its rows in one transaction, its positions
//! saved once its events are published.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use hcp_domain::aggregate::{AggFacts, DimFacts};
use hcp_domain::attribution::{parse_dimension_scope_key, parse_scope_key};
use hcp_domain::integrity::{IntegrityFlag, IntegrityPolicy, Press, Probes};
use hcp_domain::{Attribution, Grade, GradeCounts, RatingSubmitted, Rollup};
use sqlx::{Postgres, Row, Transaction};
use uuid::Uuid;

use crate::workorders::{open_orders, NewOrder};
use crate::{Error, Store};

/// A rating read from the topic, with where it was read and its attribution.
#[derive(Debug, Clone)]
pub struct StoredRating {
    /// The event.
    pub event: RatingSubmitted,
    /// Who it is attributed to, against the aggregator's directory snapshot.
    pub attribution: Attribution,
    /// Source partition.
    pub partition: i32,
    /// Source offset.
    pub offset: i64,
    /// Anti-gaming flags (stored with the rating; counted unless the batch excludes flagged).
    pub integrity_flags: Vec<IntegrityFlag>,
}

/// A record that could not be decoded or broke an invariant.
#[derive(Debug, Clone)]
pub struct Rejected {
    /// Source partition.
    pub partition: i32,
    /// Source offset.
    pub offset: i64,
    /// Record key.
    pub key: Option<Vec<u8>>,
    /// Record body.
    pub payload: Option<Vec<u8>>,
    /// Why it was rejected.
    pub reason: String,
}

/// The next offset to read for one partition once this batch is committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Partition.
    pub partition: i32,
    /// Next offset to read.
    pub next_offset: i64,
}

/// Everything one consumed batch changes.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// Consumer group whose positions advance.
    pub group_id: String,
    /// Source topic.
    pub topic: String,
    /// Decoded ratings, in topic order per partition.
    pub ratings: Vec<StoredRating>,
    /// Records kept aside.
    pub rejected: Vec<Rejected>,
    /// New positions, one per partition in the batch.
    pub positions: Vec<Position>,
    /// The work orders the batch's bad ratings open (only those of newly stored ratings open).
    pub orders: Vec<NewOrder>,
    /// Leave ratings with integrity flags out of the aggregates (an explicit policy).
    pub exclude_flagged: bool,
}

/// What a committed batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Ratings stored for the first time.
    pub inserted: usize,
    /// Ratings already stored (redelivery or duplicate submission): nothing changed.
    pub duplicates: usize,
    /// First ratings replaced in the statistics by a follow-up.
    pub replaced: usize,
    /// Aggregate rows upserted.
    pub aggregate_rows: usize,
    /// Records kept as rejected.
    pub rejected: usize,
    /// New ratings whose attribution is incomplete (kept and counted where known).
    pub flagged: usize,
    /// Work orders opened for new bad ratings.
    pub orders_opened: usize,
}

/// The columns [`facts_from_row`] reads.
pub(crate) const FACT_COLUMNS: &str = "grade, rated_at, agg_scopes, tags, dimensions, dim_scopes";

/// A rating's stored dimension grades (`dimensions`, `{"code": grade}`).
pub(crate) fn dimensions_from_row(
    row: &sqlx::postgres::PgRow,
) -> Result<std::collections::BTreeMap<String, Grade>, Error> {
    let stored: sqlx::types::Json<std::collections::BTreeMap<String, u8>> = row.try_get("dimensions")?;
    stored
        .0
        .into_iter()
        .map(|(code, g)| {
            let grade =
                Grade::new(g).ok_or_else(|| Error::Decode("stored rating has an invalid dimension grade".into()))?;
            Ok((code, grade))
        })
        .collect()
}

/// The aggregation facts of a stored rating: exactly the rows it was counted in
/// (needs [`FACT_COLUMNS`]).
pub(crate) fn facts_from_row(row: &sqlx::postgres::PgRow) -> Result<AggFacts, Error> {
    let decode = |what: &str| Error::Decode(format!("stored rating has an invalid {what}").into());
    let grade: i16 = row.try_get("grade")?;
    let keys: Vec<String> = row.try_get("agg_scopes")?;
    let grades = dimensions_from_row(row)?;
    let mut dimensions: Vec<DimFacts> = Vec::new();
    for key in row.try_get::<Vec<String>, _>("dim_scopes")? {
        let (code, scope) = parse_dimension_scope_key(&key).ok_or_else(|| decode("dimension scope"))?;
        let grade = *grades.get(&code).ok_or_else(|| decode("dimension scope"))?;
        match dimensions.iter_mut().find(|d| d.code == code) {
            Some(d) => d.scopes.push(scope),
            None => dimensions.push(DimFacts { code, grade, scopes: vec![scope] }),
        }
    }
    Ok(AggFacts {
        dimensions,
        grade: u8::try_from(grade).ok().and_then(Grade::new).ok_or_else(|| decode("grade"))?,
        rated_at: row.try_get("rated_at")?,
        scopes: keys
            .iter()
            .map(|k| parse_scope_key(k).ok_or_else(|| decode("aggregate scope")))
            .collect::<Result<_, _>>()?,
        tags: row.try_get("tags")?,
    })
}

/// The facts a rating is counted with under `attribution`.
pub(crate) fn facts_of(event: &RatingSubmitted, attribution: &Attribution) -> AggFacts {
    AggFacts {
        grade: event.grade,
        rated_at: event.rated_at,
        scopes: attribution.scopes.clone(),
        tags: event.tags.clone(),
        dimensions: attribution
            .dimension_scopes
            .iter()
            .filter_map(|(code, scopes)| {
                let grade = *event.dimensions.get(code)?;
                Some(DimFacts { code: code.clone(), grade, scopes: scopes.clone() })
            })
            .collect(),
    }
}

/// The ratings of a batch whose attributed events the batch must publish, as found before its
/// write (see [`Store::publishable`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Publishable {
    /// Ratings the write stores for the first time.
    pub new: HashSet<Uuid>,
    /// Ratings already stored from these very records by an earlier read whose positions were
    /// not saved: their events are published again.
    pub again: HashSet<Uuid>,
}

/// A batch's rows written but not yet committed.
pub struct PendingBatch {
    tx: Transaction<'static, Postgres>,
    /// What the batch does once committed.
    pub outcome: BatchOutcome,
    /// Ids of the ratings stored for the first time by this batch.
    pub new_ids: HashSet<Uuid>,
}

impl PendingBatch {
    /// Commits everything the batch wrote.
    pub async fn commit(self) -> Result<BatchOutcome, Error> {
        self.tx.commit().await?;
        Ok(self.outcome)
    }
}

impl Store {
    /// The stored presses the anti-gaming checks need to judge a batch's new presses, and no
    /// more (one query per batch): for each of `probes.neighbours`, the stored presses of its
    /// device just before and just after it (a too-fast gap is measured to the neighbours); for
    /// each of `probes.device_top` / `probes.staff_top`, the last `burst_top_grades` top grades of
    /// its device / staff member before it within the burst window (a press is a burst when that
    /// many precede it, so older ones cannot change a verdict). Index probes per press, however
    /// busy a device has been and however wide the batch's time span: the top-grade probes walk
    /// partial indexes of exactly those rows in exactly that order (migration 16), so the plan
    /// stays a short index scan even on a table never analyzed.
    pub async fn recent_presses(&self, probes: &Probes<'_>, policy: &IntegrityPolicy) -> Result<Vec<Press>, Error> {
        if probes.neighbours.is_empty() && probes.device_top.is_empty() && probes.staff_top.is_empty() {
            return Ok(vec![]);
        }
        let ids = |v: &[&Press]| v.iter().map(|p| p.rating_id).collect::<Vec<_>>();
        let times = |v: &[&Press]| v.iter().map(|p| p.rated_at).collect::<Vec<_>>();
        let devices = |v: &[&Press]| v.iter().map(|p| p.device_id.clone()).collect::<Vec<_>>();
        let gap = chrono::Duration::seconds(policy.min_interval_secs.max(0));
        let window = chrono::Duration::seconds(policy.burst_window_secs.max(0));
        let rows = sqlx::query(
            "WITH nb AS (SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::timestamptz[]) AS n(id, dev, at)),
                  dt AS (SELECT * FROM UNNEST($4::uuid[], $5::text[], $6::timestamptz[]) AS n(id, dev, at)),
                  st AS (SELECT * FROM UNNEST($7::uuid[], $8::text[], $9::timestamptz[]) AS n(id, staff, at))
             SELECT p.* FROM nb n CROSS JOIN LATERAL (
                 SELECT rating_id, device_id, attr_staff_id, grade, rated_at FROM ratings r
                  WHERE r.device_id = n.dev AND r.rated_at >= n.at - $10 AND (r.rated_at, r.rating_id) < (n.at, n.id)
                  ORDER BY r.rated_at DESC, r.rating_id DESC LIMIT 1) p
             UNION
             SELECT p.* FROM nb n CROSS JOIN LATERAL (
                 SELECT rating_id, device_id, attr_staff_id, grade, rated_at FROM ratings r
                  WHERE r.device_id = n.dev AND r.rated_at <= n.at + $10 AND (r.rated_at, r.rating_id) > (n.at, n.id)
                  ORDER BY r.rated_at, r.rating_id LIMIT 1) p
             UNION
             SELECT p.* FROM dt n CROSS JOIN LATERAL (
                 SELECT rating_id, device_id, attr_staff_id, grade, rated_at FROM ratings r
                  WHERE r.device_id = n.dev AND r.grade = 5 AND r.rated_at > n.at - $11
                    AND (r.rated_at, r.rating_id) < (n.at, n.id)
                  ORDER BY r.rated_at DESC, r.rating_id DESC LIMIT $12) p
             UNION
             SELECT p.* FROM st n CROSS JOIN LATERAL (
                 SELECT rating_id, device_id, attr_staff_id, grade, rated_at FROM ratings r
                  WHERE r.attr_staff_id = n.staff AND r.grade = 5 AND r.rated_at > n.at - $11
                    AND (r.rated_at, r.rating_id) < (n.at, n.id)
                  ORDER BY r.rated_at DESC, r.rating_id DESC LIMIT $12) p",
        )
        .bind(ids(&probes.neighbours))
        .bind(devices(&probes.neighbours))
        .bind(times(&probes.neighbours))
        .bind(ids(&probes.device_top))
        .bind(devices(&probes.device_top))
        .bind(times(&probes.device_top))
        .bind(ids(&probes.staff_top))
        .bind(probes.staff_top.iter().map(|p| p.staff_id.clone()).collect::<Vec<_>>())
        .bind(times(&probes.staff_top))
        .bind(gap)
        .bind(window)
        .bind(policy.burst_top_grades as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Press {
                    rating_id: r.try_get("rating_id")?,
                    device_id: r.try_get("device_id")?,
                    staff_id: r.try_get("attr_staff_id")?,
                    grade: r.try_get::<i16, _>("grade")?.clamp(1, 5) as u8,
                    rated_at: r.try_get("rated_at")?,
                    rater_staff: Vec::new(),
                })
            })
            .collect()
    }

    /// What the write of `ratings` (read from `topic`) will find, once `pending` (a batch being
    /// written, committed or not) is stored: [`Publishable::new`], the ratings it stores for the first
    /// time (neither the id nor the (service record, stage, assess number) slot is stored now or
    /// taken in `pending`, and no earlier rating of the batch takes either; two index probes per
    /// rating), and [`Publishable::again`], those already stored from these very records (same topic,
    /// partition and offset: an earlier read whose rows committed but whose positions were not
    /// saved, so its events may not have been published). Only a concurrent writer of the same
    /// ratings can make the write differ.
    pub async fn publishable(
        &self,
        topic: &str,
        ratings: &[StoredRating],
        pending: &[StoredRating],
    ) -> Result<Publishable, Error> {
        if ratings.is_empty() {
            return Ok(Publishable::default());
        }
        let rows: Vec<(Uuid, bool)> = sqlx::query_as(
            "SELECT t.id, EXISTS (SELECT 1 FROM rating_keys k
                                     JOIN ratings r ON r.rating_id = k.rating_id AND r.rated_at = k.rated_at
                                    WHERE k.rating_id = t.id AND r.source_topic = $7
                                      AND r.source_partition = t.part AND r.source_offset = t.off)
               FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::int2[], $5::int4[], $6::int8[])
                    AS t(id, rec, stage, assess, part, off)
               -- Two index probes per rating, whatever the estimates: `OFFSET 0` keeps each
               -- look-up a parameterised probe (as `EXISTS … OR EXISTS …` PostgreSQL may hash all
               -- of `rating_keys` instead: 1.4 s a batch over 5.4 M stored ratings).
               LEFT JOIN LATERAL (SELECT 1 AS hit FROM rating_keys k WHERE k.rating_id = t.id OFFSET 0) by_id ON true
               LEFT JOIN LATERAL (SELECT 1 AS hit FROM rating_keys k
                                   WHERE k.service_record_no = t.rec AND k.stage = t.stage AND k.assess_number = t.assess
                                  OFFSET 0) by_slot ON true
              WHERE by_id.hit IS NOT NULL OR by_slot.hit IS NOT NULL",
        )
        .bind(ratings.iter().map(|r| r.event.rating_id).collect::<Vec<_>>())
        .bind(ratings.iter().map(|r| r.event.service_record_no.as_str()).collect::<Vec<_>>())
        .bind(ratings.iter().map(|r| r.event.stage.as_str()).collect::<Vec<_>>())
        .bind(ratings.iter().map(|r| r.event.assess_number.value() as i16).collect::<Vec<_>>())
        .bind(ratings.iter().map(|r| r.partition).collect::<Vec<_>>())
        .bind(ratings.iter().map(|r| r.offset).collect::<Vec<_>>())
        .bind(topic)
        .fetch_all(&self.pool)
        .await?;
        let taken: HashSet<Uuid> = rows.iter().map(|(id, _)| *id).collect();
        let again: HashSet<Uuid> = rows.iter().filter(|(_, same_record)| *same_record).map(|(id, _)| *id).collect();
        let mut ids = HashSet::new();
        let mut slots = HashSet::new();
        for e in pending.iter().map(|r| &r.event) {
            ids.insert(e.rating_id);
            slots.insert((e.service_record_no.as_str(), e.stage.as_str(), e.assess_number.value()));
        }
        let mut new = HashSet::new();
        for r in ratings {
            let e = &r.event;
            let first_id = ids.insert(e.rating_id);
            let first_slot = slots.insert((e.service_record_no.as_str(), e.stage.as_str(), e.assess_number.value()));
            if first_id && first_slot && !taken.contains(&e.rating_id) {
                new.insert(e.rating_id);
            }
        }
        Ok(Publishable { new, again })
    }

    /// Stores a batch and its positions in one transaction (see [`Store::write_rows`]) and
    /// commits it.
    pub async fn apply_batch(&self, batch: &Batch) -> Result<BatchOutcome, Error> {
        let mut pending = self.write_rows(batch, None).await?;
        save_positions(&mut *pending.tx, &batch.group_id, &batch.topic, &batch.positions).await?;
        pending.commit().await
    }

    /// Writes a batch's rows inside one open transaction: new ratings with their attribution,
    /// follow-up replacement, aggregate deltas computed from the newly inserted rows only, work
    /// orders for new bad ratings and rejected records. Either all of it commits or none of it
    /// does, and a rating already stored changes nothing, so a crash anywhere neither loses nor
    /// double-counts a rating. The consumer positions are not part of it: the aggregator saves
    /// them ([`Store::save_positions`]) once the batch's events are published.
    ///
    /// `expected_new` ([`Publishable::new`]) lets the insert skip the conflict checks: only those
    /// ratings are inserted, plainly, under a savepoint; should one of them be stored meanwhile
    /// (a concurrent writer), the savepoint is rolled back and the whole batch inserted with
    /// `ON CONFLICT DO NOTHING`, the path taken without `expected_new`. Either way the ratings
    /// stored are the ones not stored before.
    pub async fn write_rows(&self, batch: &Batch, expected_new: Option<&HashSet<Uuid>>) -> Result<PendingBatch, Error> {
        let mut tx = self.pool.begin().await?;
        let mut outcome = BatchOutcome::default();
        let new_ids = match expected_new {
            Some(expected) => insert_expected(&mut tx, &batch.topic, &batch.ratings, expected).await?,
            None => {
                insert_ratings(&mut tx, &batch.topic, &batch.ratings.iter().collect::<Vec<_>>(), Conflicts::Skip)
                    .await?
            }
        };
        outcome.inserted = new_ids.len();
        outcome.duplicates = batch.ratings.len() - new_ids.len();

        let by_id: HashMap<Uuid, &StoredRating> =
            batch.ratings.iter().map(|r| (r.event.rating_id, r)).filter(|(id, _)| new_ids.contains(id)).collect();
        let mut rollup = Rollup::new();
        let mut not_counted: HashSet<Uuid> = HashSet::new();

        // A new follow-up supersedes its first rating: take the first out of the statistics
        // (unless it arrived in this very batch and was never counted).
        let follow_ups: Vec<&RatingSubmitted> =
            by_id.values().map(|r| &r.event).filter(|e| e.assess_number.value() == 2).collect();
        if !follow_ups.is_empty() {
            let rows = sqlx::query(
                "UPDATE ratings r SET superseded_by = f.id
                   FROM UNNEST($1::text[], $2::text[], $3::uuid[]) AS f(rec, stage, id)
                   JOIN rating_keys k ON k.service_record_no = f.rec AND k.stage = f.stage AND k.assess_number = 1
                  WHERE r.rating_id = k.rating_id AND r.rated_at = k.rated_at AND r.superseded_by IS NULL
              RETURNING r.rating_id, r.grade, r.rated_at, r.agg_scopes, r.tags, r.dimensions, r.dim_scopes,
                        r.excluded_at IS NOT NULL AS excluded",
            )
            .bind(follow_ups.iter().map(|e| e.service_record_no.as_str()).collect::<Vec<_>>())
            .bind(follow_ups.iter().map(|e| e.stage.as_str()).collect::<Vec<_>>())
            .bind(follow_ups.iter().map(|e| e.rating_id).collect::<Vec<_>>())
            .fetch_all(&mut *tx)
            .await?;
            for row in &rows {
                let id: Uuid = row.try_get("rating_id")?;
                if by_id.contains_key(&id) {
                    not_counted.insert(id);
                } else if !row.try_get::<bool, _>("excluded")? {
                    // An appeal-excluded first rating was already taken out.
                    rollup.remove(&facts_from_row(row)?);
                }
            }
            outcome.replaced = rows.len();
        }
        // A new first rating whose follow-up is already stored is superseded on arrival.
        let firsts: Vec<&RatingSubmitted> = by_id
            .values()
            .map(|r| &r.event)
            .filter(|e| e.assess_number.value() == 1 && !not_counted.contains(&e.rating_id))
            .collect();
        // Their follow-ups are looked up by slot in `rating_keys` first (an index probe each;
        // almost always none): joining the batch to `ratings` made PostgreSQL hash the whole
        // month's partition on every batch (65 ms at 50 000 stored ratings, growing with them).
        let followed: Vec<(Uuid, DateTime<Utc>, Uuid)> = if firsts.is_empty() {
            Vec::new()
        } else {
            sqlx::query_as(
                "SELECT n.id, n.at, f.rating_id
                   FROM UNNEST($1::uuid[], $2::timestamptz[], $3::text[], $4::text[]) AS n(id, at, rec, stage)
                   JOIN rating_keys f ON f.service_record_no = n.rec AND f.stage = n.stage AND f.assess_number = 2",
            )
            .bind(firsts.iter().map(|e| e.rating_id).collect::<Vec<_>>())
            .bind(firsts.iter().map(|e| e.rated_at).collect::<Vec<_>>())
            .bind(firsts.iter().map(|e| e.service_record_no.as_str()).collect::<Vec<_>>())
            .bind(firsts.iter().map(|e| e.stage.as_str()).collect::<Vec<_>>())
            .fetch_all(&mut *tx)
            .await?
        };
        if !followed.is_empty() {
            let late: Vec<Uuid> = sqlx::query_scalar(
                "UPDATE ratings r SET superseded_by = n.follow_up
                   FROM UNNEST($1::uuid[], $2::timestamptz[], $3::uuid[]) AS n(id, at, follow_up)
                  WHERE r.rating_id = n.id AND r.rated_at = n.at AND r.superseded_by IS NULL
              RETURNING r.rating_id",
            )
            .bind(followed.iter().map(|f| f.0).collect::<Vec<_>>())
            .bind(followed.iter().map(|f| f.1).collect::<Vec<_>>())
            .bind(followed.iter().map(|f| f.2).collect::<Vec<_>>())
            .fetch_all(&mut *tx)
            .await?;
            outcome.replaced += late.len();
            not_counted.extend(late);
        }
        for (id, rating) in &by_id {
            let excluded = batch.exclude_flagged && !rating.integrity_flags.is_empty();
            if !not_counted.contains(id) && !excluded {
                rollup.add(&facts_of(&rating.event, &rating.attribution));
            }
        }
        outcome.flagged = by_id.values().filter(|r| r.attribution.is_flagged()).count();
        let new_orders: Vec<&NewOrder> = batch.orders.iter().filter(|o| new_ids.contains(&o.rating_id)).collect();
        outcome.orders_opened = open_orders(&mut tx, &new_orders).await?;
        outcome.aggregate_rows = upsert_aggregates(&mut tx, rollup).await?;
        outcome.rejected = insert_rejected(&mut tx, &batch.topic, &batch.rejected).await?;
        Ok(PendingBatch { tx, outcome, new_ids })
    }

    /// Saves a batch's consumer positions (never moving one backwards).
    pub async fn save_positions(&self, group: &str, topic: &str, positions: &[Position]) -> Result<(), Error> {
        save_positions(&self.pool, group, topic, positions).await
    }

    /// The stored positions of `group` for `partitions` of `topic` (absent when never stored).
    pub async fn load_positions(
        &self,
        group: &str,
        topic: &str,
        partitions: &[i32],
    ) -> Result<HashMap<i32, i64>, Error> {
        let rows: Vec<(i32, i64)> = sqlx::query_as(
            "SELECT partition, next_offset FROM consumer_positions
              WHERE group_id = $1 AND topic = $2 AND partition = ANY($3)",
        )
        .bind(group)
        .bind(topic)
        .bind(partitions)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().collect())
    }
}

/// How an insert treats a rating whose id or slot is already stored.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Conflicts {
    /// `ON CONFLICT DO NOTHING`: it is skipped.
    Skip,
    /// None expected: the statement fails with a unique violation (cheaper when there are none).
    Fail,
}

/// Inserts the ratings of `expected` (once each, in batch order) without conflict checks under a
/// savepoint; on a unique violation rolls back to it and inserts the whole batch skipping
/// conflicts. Returns the ids stored.
async fn insert_expected(
    tx: &mut Transaction<'_, Postgres>,
    topic: &str,
    ratings: &[StoredRating],
    expected: &HashSet<Uuid>,
) -> Result<HashSet<Uuid>, Error> {
    let mut once = HashSet::new();
    let rows: Vec<&StoredRating> =
        ratings.iter().filter(|r| expected.contains(&r.event.rating_id) && once.insert(r.event.rating_id)).collect();
    let mut savepoint = sqlx::Connection::begin(&mut **tx).await?;
    match insert_ratings(&mut savepoint, topic, &rows, Conflicts::Fail).await {
        Ok(ids) => {
            savepoint.commit().await?;
            Ok(ids)
        }
        Err(Error::Database(e)) if e.is_unique_violation() => {
            savepoint.rollback().await?;
            insert_ratings(tx, topic, &ratings.iter().collect::<Vec<_>>(), Conflicts::Skip).await
        }
        Err(e) => Err(e),
    }
}

async fn insert_ratings(
    tx: &mut Transaction<'_, Postgres>,
    topic: &str,
    ratings: &[&StoredRating],
    conflicts: Conflicts,
) -> Result<HashSet<Uuid>, Error> {
    if ratings.is_empty() {
        return Ok(HashSet::new());
    }
    // Columns borrow from the batch; only joined lists and JSON documents are built here.
    let col = |f: fn(&StoredRating) -> Option<&str>| ratings.iter().copied().map(f).collect::<Vec<_>>();
    let joined = |f: fn(&StoredRating) -> String| ratings.iter().copied().map(f).collect::<Vec<_>>();
    let ids: Vec<Uuid> = ratings.iter().map(|r| r.event.rating_id).collect();
    let records = col(|r| Some(&r.event.service_record_no));
    let stages = col(|r| Some(r.event.stage.as_str()));
    let assess: Vec<i16> = ratings.iter().map(|r| i16::from(r.event.assess_number.value())).collect();
    let channels = col(|r| Some(r.event.channel.as_str()));
    let items = col(|r| r.event.service_item_code.as_deref());
    let depts = col(|r| r.event.department_id.as_deref());
    let halls = col(|r| r.event.hall_id.as_deref());
    let windows = col(|r| r.event.window_id.as_deref());
    let staff = col(|r| r.event.staff_id.as_deref());
    let devices = col(|r| r.event.device_id.as_deref());
    let grades: Vec<i16> = ratings.iter().map(|r| i16::from(r.event.grade.value())).collect();
    // Tag codes are validated to [A-Za-z0-9_.-], so a comma join is unambiguous.
    let tags = joined(|r| r.event.tags.join(","));
    let comments = col(|r| r.event.comment.as_deref());
    let rated: Vec<DateTime<Utc>> = ratings.iter().map(|r| r.event.rated_at).collect();
    let received: Vec<DateTime<Utc>> = ratings.iter().map(|r| r.event.received_at).collect();
    let partitions: Vec<i32> = ratings.iter().map(|r| r.partition).collect();
    let offsets: Vec<i64> = ratings.iter().map(|r| r.offset).collect();
    let a_dept = col(|r| r.attribution.department_id.as_deref());
    let a_hall = col(|r| r.attribution.hall_id.as_deref());
    let a_window = col(|r| r.attribution.window_id.as_deref());
    let a_staff = col(|r| r.attribution.staff_id.as_deref());
    // JSON documents as text (cast in the statement): no `serde_json::Value` tree per rating.
    let a_json = joined(|r| serde_json::to_string(&r.attribution).expect("attributions serialize"));
    // Flag names and scope keys never contain the unit separator (ids exclude control characters).
    let a_flags = joined(|r| r.attribution.flags.iter().map(|f| f.as_str()).collect::<Vec<_>>().join("\u{1f}"));
    let a_scopes = joined(|r| r.attribution.scope_keys().join("\u{1f}"));
    let d_scopes = joined(|r| r.attribution.dimension_scope_keys().join("\u{1f}"));
    let dimensions = joined(|r| {
        let grades: std::collections::BTreeMap<&str, u8> =
            r.event.dimensions.iter().map(|(c, g)| (c.as_str(), g.value())).collect();
        serde_json::to_string(&grades).expect("grades serialize")
    });
    let a_version: Vec<i64> = ratings.iter().map(|r| r.attribution.directory_version).collect();
    let integrity = joined(|r| r.integrity_flags.iter().map(|f| f.as_str()).collect::<Vec<_>>().join(","));
    let raters: Vec<Option<String>> = ratings
        .iter()
        .map(|r| r.event.rater.as_ref().map(|x| serde_json::to_string(x).expect("raters serialize")))
        .collect();
    let on_conflict = if conflicts == Conflicts::Skip { "ON CONFLICT DO NOTHING" } else { "" };
    // The uniqueness lives in `rating_keys` (`ratings` is partitioned by month, migration 26):
    // the keys are inserted first, in batch order, and only the ratings whose key went in are
    // stored (the first of a rating read twice in one batch), so a rating whose id or slot is
    // taken inserts nothing, as the unique constraints of one table used to decide.
    let sql = format!(
        "WITH t AS (
             SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::int2[], $5::text[], $6::text[],
                                  $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::int2[],
                                  $13::text[], $14::text[], $15::timestamptz[], $16::timestamptz[],
                                  $17::int4[], $18::int8[], $20::text[], $21::text[], $22::text[], $23::text[],
                                  $24::text[], $25::text[], $26::text[], $27::int8[], $28::text[], $29::text[],
                                  $30::text[], $31::text[]) WITH ORDINALITY
                 AS t(id, rec, stage, assess, channel, item, dept, hall, win, staff, dev, grade,
                      tags, comment, rated, received, part, off, a_dept, a_hall, a_win, a_staff,
                      a_json, a_flags, a_scopes, a_version, rater, integrity, dims, d_scopes, ord)),
              k AS (
             INSERT INTO rating_keys (rating_id, service_record_no, stage, assess_number, rated_at)
             SELECT id, rec, stage, assess, rated FROM t ORDER BY ord
             {on_conflict}
             RETURNING rating_id)
         INSERT INTO ratings (rating_id, service_record_no, stage, assess_number, channel,
                              service_item_code, department_id, hall_id, window_id, staff_id, device_id,
                              grade, tags, comment, rated_at, received_at,
                              source_topic, source_partition, source_offset,
                              attr_department_id, attr_hall_id, attr_window_id, attr_staff_id,
                              attribution, attribution_flags, agg_scopes, directory_version, attributed_at,
                              rater, integrity_flags, dimensions, dim_scopes)
         SELECT DISTINCT ON (id) id, rec, stage, assess, channel, item, dept, hall, win, staff, dev, grade,
                string_to_array(tags, ','), comment, rated, received, $19, part, off,
                a_dept, a_hall, a_win, a_staff, a_json::jsonb, string_to_array(a_flags, E'\\x1f'),
                string_to_array(a_scopes, E'\\x1f'), a_version, now(), rater::jsonb,
                COALESCE(string_to_array(NULLIF(integrity, ''), ','), '{{}}'), dims::jsonb,
                COALESCE(string_to_array(NULLIF(d_scopes, ''), E'\\x1f'), '{{}}')
           FROM t WHERE id IN (SELECT rating_id FROM k)
          ORDER BY id, ord
         RETURNING rating_id"
    );
    let inserted: Vec<Uuid> = sqlx::query_scalar(&sql)
        .bind(ids)
        .bind(records)
        .bind(stages)
        .bind(assess)
        .bind(channels)
        .bind(items)
        .bind(depts)
        .bind(halls)
        .bind(windows)
        .bind(staff)
        .bind(devices)
        .bind(grades)
        .bind(tags)
        .bind(comments)
        .bind(rated)
        .bind(received)
        .bind(partitions)
        .bind(offsets)
        .bind(topic)
        .bind(a_dept)
        .bind(a_hall)
        .bind(a_window)
        .bind(a_staff)
        .bind(a_json)
        .bind(a_flags)
        .bind(a_scopes)
        .bind(a_version)
        .bind(raters)
        .bind(integrity)
        .bind(dimensions)
        .bind(d_scopes)
        .fetch_all(&mut **tx)
        .await?;
    Ok(inserted.into_iter().collect())
}

/// Adds a rollup's deltas to `rating_aggregates`, its split rows to `rating_splits` and its
/// dimension rows to `rating_dimension_aggregates` (one statement each, rows in a stable order);
/// returns the number of aggregate rows touched.
pub(crate) async fn upsert_aggregates(tx: &mut Transaction<'_, Postgres>, rollup: Rollup) -> Result<usize, Error> {
    let dims = rollup.dimension_rows();
    if !dims.is_empty() {
        let sql = add_counts_sql(
            "rating_dimension_aggregates",
            &[("scope", "text"), ("scope_id", "text"), ("day_start", "timestamptz"), ("dimension", "text")],
        );
        let q = sqlx::query(&sql)
            .bind(dims.iter().map(|(k, _)| k.scope.as_str()).collect::<Vec<_>>())
            .bind(dims.iter().map(|(k, _)| k.scope_id.as_str()).collect::<Vec<_>>())
            .bind(dims.iter().map(|(k, _)| k.day_start).collect::<Vec<_>>())
            .bind(dims.iter().map(|(k, _)| k.dimension.as_str()).collect::<Vec<_>>());
        bind_counts(q, &dims).execute(&mut **tx).await?;
    }
    let splits = rollup.split_rows();
    if !splits.is_empty() {
        let sql = add_counts_sql(
            "rating_splits",
            &[("reach", "text"), ("day_start", "timestamptz"), ("dimension", "text"), ("value", "text")],
        );
        let q = sqlx::query(&sql)
            .bind(splits.iter().map(|(k, _)| k.reach.as_str()).collect::<Vec<_>>())
            .bind(splits.iter().map(|(k, _)| k.day_start).collect::<Vec<_>>())
            .bind(splits.iter().map(|(k, _)| k.dim.as_str()).collect::<Vec<_>>())
            .bind(splits.iter().map(|(k, _)| k.value.as_str()).collect::<Vec<_>>());
        bind_counts(q, &splits).execute(&mut **tx).await?;
    }
    let rows = rollup.into_rows();
    if !rows.is_empty() {
        let sql = add_counts_sql(
            "rating_aggregates",
            &[("scope", "text"), ("scope_id", "text"), ("width", "text"), ("bucket_start", "timestamptz")],
        );
        let q = sqlx::query(&sql)
            .bind(rows.iter().map(|(k, _)| k.scope.as_str()).collect::<Vec<_>>())
            .bind(rows.iter().map(|(k, _)| k.scope_id.as_str()).collect::<Vec<_>>())
            .bind(rows.iter().map(|(k, _)| k.width.as_str()).collect::<Vec<_>>())
            .bind(rows.iter().map(|(k, _)| k.bucket_start).collect::<Vec<_>>());
        bind_counts(q, &rows).execute(&mut **tx).await?;
    }
    Ok(rows.len())
}

/// `INSERT … SELECT * FROM UNNEST(…) ON CONFLICT (keys) DO UPDATE` adding the five grade counts
/// to a rollup table whose primary key is exactly `keys` (name, SQL type): the key arrays are
/// `$1…$k`, the counts the five after them ([`bind_counts`]).
fn add_counts_sql(table: &str, keys: &[(&str, &str)]) -> String {
    let names: Vec<&str> = keys.iter().map(|(n, _)| *n).collect();
    let arrays: Vec<String> = keys
        .iter()
        .map(|(_, t)| *t)
        .chain(["int8"; 5])
        .enumerate()
        .map(|(i, t)| format!("${}::{t}[]", i + 1))
        .collect();
    let names = names.join(", ");
    format!(
        "INSERT INTO {table} AS a ({names}, n1, n2, n3, n4, n5) SELECT * FROM UNNEST({})
         ON CONFLICT ({names}) DO UPDATE
            SET n1 = a.n1 + EXCLUDED.n1, n2 = a.n2 + EXCLUDED.n2, n3 = a.n3 + EXCLUDED.n3,
                n4 = a.n4 + EXCLUDED.n4, n5 = a.n5 + EXCLUDED.n5, updated_at = now()",
        arrays.join(", ")
    )
}

/// Binds the five grade-count arrays of `rows` (after the key arrays).
fn bind_counts<'q, K>(
    mut q: sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>,
    rows: &[(K, GradeCounts)],
) -> sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments> {
    for grade in 0..5 {
        q = q.bind(rows.iter().map(|(_, c)| c.0[grade]).collect::<Vec<i64>>());
    }
    q
}

async fn insert_rejected(
    tx: &mut Transaction<'_, Postgres>,
    topic: &str,
    rejected: &[Rejected],
) -> Result<usize, Error> {
    for r in rejected {
        sqlx::query(
            "INSERT INTO rejected_messages (topic, partition, \"offset\", key, payload, reason)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(topic)
        .bind(r.partition)
        .bind(r.offset)
        .bind(&r.key)
        .bind(&r.payload)
        .bind(&r.reason)
        .execute(&mut **tx)
        .await?;
    }
    Ok(rejected.len())
}

async fn save_positions<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    group: &str,
    topic: &str,
    positions: &[Position],
) -> Result<(), Error> {
    if positions.is_empty() {
        return Ok(());
    }
    // GREATEST: a consumer that lost its partitions mid-batch never moves a position backwards.
    sqlx::query(
        "INSERT INTO consumer_positions AS p (group_id, topic, partition, next_offset)
         SELECT $1, $2, part, off FROM UNNEST($3::int4[], $4::int8[]) AS t(part, off)
         ON CONFLICT (group_id, topic, partition) DO UPDATE
            SET next_offset = GREATEST(p.next_offset, EXCLUDED.next_offset), updated_at = now()",
    )
    .bind(group)
    .bind(topic)
    .bind(positions.iter().map(|p| p.partition).collect::<Vec<_>>())
    .bind(positions.iter().map(|p| p.next_offset).collect::<Vec<_>>())
    .execute(executor)
    .await?;
    Ok(())
}
