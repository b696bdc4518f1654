//! A caller's reach (whole system, a department, a region) as SQL conditions: the one place it
//! becomes SQL, for work orders, ratings and units.

/// Which orders a caller may see and act on: the caller's [`hcp_domain::Reach`].
pub use hcp_domain::Reach as OrderScope;

/// `(sql condition on work orders aliased o, its text parameter $n)`: the order's department is
/// the reach's, or its region path (the region and its ancestors) holds the reach's region
/// (`@>`, which the GIN index on `region_path` serves).
pub(crate) fn scope_condition(scope: &OrderScope, n: usize) -> (String, Option<String>) {
    match scope {
        OrderScope::All => ("true".into(), None),
        OrderScope::Department(d) => (format!("o.department_id = ${n}"), Some(d.clone())),
        OrderScope::Region(r) => (format!("o.region_path @> ARRAY[${n}::text]"), Some(r.clone())),
    }
}

/// `(sql condition on the ratings table, its text parameter $n)`: the rating's attributed
/// department lies within the reach (a region's: that region or one below it).
pub(crate) fn rating_reach_condition(reach: &OrderScope, n: usize) -> (String, Option<String>) {
    match reach {
        // The parameter is bound (as NULL) either way, so the statement always names it.
        OrderScope::All => (format!("${n}::text IS NULL"), None),
        OrderScope::Department(d) => (format!("attr_department_id = ${n}"), Some(d.clone())),
        OrderScope::Region(r) => (
            format!(
                "attr_department_id IN (SELECT d.id FROM departments d WHERE d.region_code IN (
                   WITH RECURSIVE down(code) AS (SELECT ${n}::text UNION ALL
                     SELECT g.code FROM regions g JOIN down ON g.parent_code = down.code)
                   SELECT code FROM down))"
            ),
            Some(r.clone()),
        ),
    }
}

/// `(sql condition on units aliased u, its text parameter $n)`, where a unit row has its region
/// (`u.reg`) and its departments (`u.depts`): a department's units, or those whose region is the
/// reach's region or one below it. `None` for the whole system (every unit is within it).
pub(crate) fn unit_reach_condition(reach: &OrderScope, n: usize) -> Option<(String, String)> {
    match reach {
        OrderScope::All => None,
        OrderScope::Department(d) => Some((format!("${n} = ANY(u.depts)"), d.clone())),
        OrderScope::Region(r) => Some((
            format!(
                "EXISTS (WITH RECURSIVE up(code) AS (SELECT u.reg UNION ALL \
                 SELECT r.parent_code FROM regions r JOIN up ON r.code = up.code WHERE r.parent_code IS NOT NULL) \
                 SELECT 1 FROM up WHERE up.code = ${n})"
            ),
            r.clone(),
        )),
    }
}
