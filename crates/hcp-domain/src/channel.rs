//! Where a rating came from (channel) and which part of the service it rates (stage).

use serde::{Deserialize, Serialize};

/// The rating channel. Richer than the national `pf` code (docs/domain.md §3); see [`Channel::national_pf`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// 窗口评价器: the tablet at a service window.
    WindowEvaluator,
    /// 自助终端: a self-service terminal in a hall.
    SelfServiceTerminal,
    /// 12345 热线 callback after a hotline call.
    Hotline,
    /// Mobile app (e.g. i深圳).
    App,
    /// Web portal (政务服务网, "我的业务").
    Web,
    /// Mini-program (e.g. 粤省事).
    MiniProgram,
    /// QR code on the evaluator screen or the printed acceptance receipt.
    QrCode,
    /// Link in an SMS sent after acceptance or pickup.
    Sms,
    /// 系统默认: no rating within the policy window, counted as 基本满意.
    SystemDefault,
}

impl Channel {
    /// Every channel, in display order.
    pub const ALL: [Channel; 9] = [
        Channel::WindowEvaluator,
        Channel::SelfServiceTerminal,
        Channel::Hotline,
        Channel::App,
        Channel::Web,
        Channel::MiniProgram,
        Channel::QrCode,
        Channel::Sms,
        Channel::SystemDefault,
    ];

    /// The wire name, as in JSON and the database.
    /// Which credential sends this channel's ratings: `device` for the hall's evaluators and
    /// terminals, `integration` for the 12345 system and the online platforms; none for citizen
    /// links (their invitation is the credential) and the system default.
    pub fn credential_kind(self) -> Option<&'static str> {
        match self {
            Channel::WindowEvaluator | Channel::SelfServiceTerminal => Some("device"),
            Channel::Hotline | Channel::App | Channel::Web | Channel::MiniProgram => Some("integration"),
            Channel::QrCode | Channel::Sms | Channel::SystemDefault => None,
        }
    }

    /// The kind of device a device key of this channel is bound to.
    pub fn device_kind(self) -> Option<crate::directory::DeviceKind> {
        match self {
            Channel::WindowEvaluator => Some(crate::directory::DeviceKind::Evaluator),
            Channel::SelfServiceTerminal => Some(crate::directory::DeviceKind::Terminal),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::WindowEvaluator => "window_evaluator",
            Channel::SelfServiceTerminal => "self_service_terminal",
            Channel::Hotline => "hotline",
            Channel::App => "app",
            Channel::Web => "web",
            Channel::MiniProgram => "mini_program",
            Channel::QrCode => "qr_code",
            Channel::Sms => "sms",
            Channel::SystemDefault => "system_default",
        }
    }

    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// zh-CN name.
    pub fn label_zh(self) -> &'static str {
        match self {
            Channel::WindowEvaluator => "窗口评价器",
            Channel::SelfServiceTerminal => "自助终端",
            Channel::Hotline => "12345热线",
            Channel::App => "移动端APP",
            Channel::Web => "网上办事大厅",
            Channel::MiniProgram => "小程序",
            Channel::QrCode => "二维码",
            Channel::Sms => "短信",
            Channel::SystemDefault => "系统默认",
        }
    }

    /// The national `pf` code (docs/domain.md §3): 1 PC, 2 mobile, 3 QR code, 4 hall tablet,
    /// 5 other hall terminal, 6 SMS, 7 system default. The hotline has no code of its own.
    pub fn national_pf(self) -> Option<u8> {
        match self {
            Channel::Web => Some(1),
            Channel::App | Channel::MiniProgram => Some(2),
            Channel::QrCode => Some(3),
            Channel::WindowEvaluator => Some(4),
            Channel::SelfServiceTerminal => Some(5),
            Channel::Sms => Some(6),
            Channel::SystemDefault => Some(7),
            Channel::Hotline => None,
        }
    }

    /// The stages a rating from this channel may rate.
    pub fn allowed_stages(self) -> &'static [Stage] {
        match self {
            Channel::WindowEvaluator | Channel::SelfServiceTerminal => &[Stage::Acceptance, Stage::Pickup],
            Channel::Hotline => &[Stage::Hotline],
            Channel::App | Channel::Web | Channel::MiniProgram | Channel::QrCode | Channel::Sms => {
                &[Stage::Acceptance, Stage::Pickup, Stage::Online]
            }
            Channel::SystemDefault => &[Stage::Acceptance, Stage::Pickup, Stage::Online, Stage::Hotline],
        }
    }
}

/// The part of a service a rating is about. Window service has two touchpoints rated separately
/// (综合窗口 "前台综合受理、统一窗口出件"; Guangdong `evalProcess` 1 受理, 2 办结).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// 受理: acceptance at the front desk.
    Acceptance,
    /// 出件 / 办结: pickup of the result.
    Pickup,
    /// 网上办理: an online service.
    Online,
    /// A 12345 hotline call.
    Hotline,
}

impl Stage {
    /// Every stage.
    pub const ALL: [Stage; 4] = [Stage::Acceptance, Stage::Pickup, Stage::Online, Stage::Hotline];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Acceptance => "acceptance",
            Stage::Pickup => "pickup",
            Stage::Online => "online",
            Stage::Hotline => "hotline",
        }
    }

    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// zh-CN name.
    pub fn label_zh(self) -> &'static str {
        match self {
            Stage::Acceptance => "受理",
            Stage::Pickup => "出件",
            Stage::Online => "网上办理",
            Stage::Hotline => "热线",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip_through_serde_and_parse() {
        for c in Channel::ALL {
            let json = serde_json::to_string(&c).unwrap();
            assert_eq!(json, format!("\"{}\"", c.as_str()));
            assert_eq!(Channel::parse(c.as_str()), Some(c));
        }
        for s in Stage::ALL {
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{}\"", s.as_str()));
            assert_eq!(Stage::parse(s.as_str()), Some(s));
        }
    }

    #[test]
    fn national_pf_mapping_is_documented_table() {
        let table: Vec<(&str, Option<u8>)> = Channel::ALL.iter().map(|c| (c.as_str(), c.national_pf())).collect();
        assert_eq!(
            table,
            vec![
                ("window_evaluator", Some(4)),
                ("self_service_terminal", Some(5)),
                ("hotline", None),
                ("app", Some(2)),
                ("web", Some(1)),
                ("mini_program", Some(2)),
                ("qr_code", Some(3)),
                ("sms", Some(6)),
                ("system_default", Some(7)),
            ]
        );
    }
}
