//! A caller's reach (whole system, a department, a region) as SQL conditions.

/// Which orders a caller may see and act on: the caller's [`hcp_domain::Reach`].
pub use hcp_domain::Reach as OrderScope;

/// `(sql condition on alias o, its text parameter)` of a reach; the parameter is `$n`.
pub(crate) fn scope_condition(scope: &OrderScope, n: usize) -> (String, Option<String>) {
    match scope {
        OrderScope::All => ("true".into(), None),
        OrderScope::Department(d) => (format!("o.department_id = ${n}"), Some(d.clone())),
        OrderScope::Region(r) => (format!("${n} = ANY(o.region_path)"), Some(r.clone())),
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
