//! Accountability on a verified cause (docs/domain.md §5.3). Shenzhen: "对经核实确因行政部门依法行使
//! 职权的内容、流程问题获得差评意见较多的部门,要及时论证、倒逼改革;对经核实确因窗口服务问题、12345咨询
//! 服务问题获得差评意见较多的工作人员,要建立教育、约谈和问责机制。"
//!
//! The verify step (核实) records, with 属实 / 不属实, what the bad review was really about: the
//! staff member's conduct (窗口服务、12345 咨询服务), the department's content or process (内容、流程),
//! the platform, or nothing (不属实). Only a founded conduct cause counts against a person; a founded
//! process cause puts the order on its department's list for 论证 / reform. Supervisors then record
//! what they did about it: 教育, 约谈, 问责 for conduct, 流程论证 for a process or platform cause.

use serde::{Deserialize, Serialize};

/// What a verified bad review was found to be about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// 窗口服务 / 12345 咨询服务: the staff member's conduct (attitude, professionalism, …).
    Conduct,
    /// 内容、流程: the department's rules, materials, process.
    Process,
    /// 平台: the online platform or a device.
    Platform,
    /// No cause: the complaint was not founded (不属实).
    None,
}

impl Cause {
    /// Every cause.
    pub const ALL: [Cause; 4] = [Cause::Conduct, Cause::Process, Cause::Platform, Cause::None];

    /// Wire name (also the stored value).
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Conduct => "conduct",
            Cause::Process => "process",
            Cause::Platform => "platform",
            Cause::None => "none",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Cause> {
        Cause::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Chinese label.
    pub fn label_zh(self) -> &'static str {
        match self {
            Cause::Conduct => "窗口服务",
            Cause::Process => "内容流程",
            Cause::Platform => "平台",
            Cause::None => "无(不属实)",
        }
    }
}

/// Why a verification's cause was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CauseError {
    /// 属实 without a cause, or with `none`.
    #[error("a founded complaint needs its cause: conduct, process or platform")]
    FoundedNeedsCause,
    /// 不属实 with a cause other than `none`.
    #[error("an unfounded complaint has no cause")]
    UnfoundedHasNoCause,
}

/// The cause a verification records: 属实 needs a real cause, 不属实 has none (given or not).
pub fn verified_cause(founded: bool, cause: Option<Cause>) -> Result<Cause, CauseError> {
    match (founded, cause) {
        (true, None | Some(Cause::None)) => Err(CauseError::FoundedNeedsCause),
        (true, Some(c)) => Ok(c),
        (false, None | Some(Cause::None)) => Ok(Cause::None),
        (false, Some(_)) => Err(CauseError::UnfoundedHasNoCause),
    }
}

/// What a supervisor did about a founded bad review.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AccountabilityKind {
    /// 教育: the staff member was instructed.
    Education,
    /// 约谈: a formal talk with the staff member.
    Interview,
    /// 问责: a disciplinary measure.
    Accountability,
    /// 流程论证: the department's content or process is reviewed for reform.
    ProcessReview,
}

impl AccountabilityKind {
    /// Every kind.
    pub const ALL: [AccountabilityKind; 4] = [
        AccountabilityKind::Education,
        AccountabilityKind::Interview,
        AccountabilityKind::Accountability,
        AccountabilityKind::ProcessReview,
    ];

    /// Wire name (also the stored value).
    pub fn as_str(self) -> &'static str {
        match self {
            AccountabilityKind::Education => "education",
            AccountabilityKind::Interview => "interview",
            AccountabilityKind::Accountability => "accountability",
            AccountabilityKind::ProcessReview => "process_review",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<AccountabilityKind> {
        AccountabilityKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Chinese label.
    pub fn label_zh(self) -> &'static str {
        match self {
            AccountabilityKind::Education => "教育",
            AccountabilityKind::Interview => "约谈",
            AccountabilityKind::Accountability => "问责",
            AccountabilityKind::ProcessReview => "流程论证",
        }
    }

    /// Whether this measure answers a founded bad review of `cause`: a person's measures only a
    /// conduct cause, 论证 only a process or platform cause; nothing answers an unfounded one.
    pub fn fits(self, cause: Cause) -> bool {
        match self {
            AccountabilityKind::Education | AccountabilityKind::Interview | AccountabilityKind::Accountability => {
                cause == Cause::Conduct
            }
            AccountabilityKind::ProcessReview => matches!(cause, Cause::Process | Cause::Platform),
        }
    }

    /// The kinds that fit `cause`, in [`AccountabilityKind::ALL`] order.
    pub fn fitting(cause: Cause) -> Vec<&'static str> {
        AccountabilityKind::ALL.into_iter().filter(|k| k.fits(cause)).map(|k| k.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_founded_complaint_names_its_cause_and_an_unfounded_one_has_none() {
        assert_eq!(verified_cause(true, Some(Cause::Conduct)), Ok(Cause::Conduct));
        assert_eq!(verified_cause(true, Some(Cause::Process)), Ok(Cause::Process));
        assert_eq!(verified_cause(true, Some(Cause::Platform)), Ok(Cause::Platform));
        assert_eq!(verified_cause(true, None), Err(CauseError::FoundedNeedsCause));
        assert_eq!(verified_cause(true, Some(Cause::None)), Err(CauseError::FoundedNeedsCause));
        assert_eq!(verified_cause(false, None), Ok(Cause::None));
        assert_eq!(verified_cause(false, Some(Cause::None)), Ok(Cause::None));
        assert_eq!(verified_cause(false, Some(Cause::Conduct)), Err(CauseError::UnfoundedHasNoCause));
    }

    #[test]
    fn a_person_answers_for_conduct_and_a_department_reviews_its_process() {
        assert_eq!(AccountabilityKind::fitting(Cause::Conduct), ["education", "interview", "accountability"]);
        assert_eq!(AccountabilityKind::fitting(Cause::Process), ["process_review"]);
        assert_eq!(AccountabilityKind::fitting(Cause::Platform), ["process_review"]);
        assert!(AccountabilityKind::fitting(Cause::None).is_empty());
        for c in Cause::ALL {
            assert_eq!(Cause::parse(c.as_str()), Some(c));
        }
        for k in AccountabilityKind::ALL {
            assert_eq!(AccountabilityKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(Cause::parse("general"), None);
    }
}
