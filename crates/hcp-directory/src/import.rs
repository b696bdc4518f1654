//! Import files: a whole directory as one JSON document, or one kind of row per CSV file.
//! Every row is checked (shape, then references against the stored directory plus the file
//! itself) before anything is written; one bad row means nothing from the file is imported.
//!
//! JSON: `{"regions": [...], "departments": [...], ...}` with the API's field names.
//! CSV: a header row with the same field names; `department_ids` and a dimension's `channels`
//! separated by `;`,
//! `negative` as `true`/`false` (or 是/否); empty cells are absent values; UTF-8, BOM allowed.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use hcp_domain::directory::{check_rows, EntityKind};
use hcp_domain::{DirectoryData, FieldError};
use hcp_http::shape_error;
use hcp_store::Store;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::value::RawValue;

/// The format of an import file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A JSON object with one array per kind.
    Json,
    /// CSV rows of one kind.
    Csv(EntityKind),
}

impl Format {
    /// The format of `path`: `.json`, or `.csv` whose kind is `kind` or else the file stem
    /// (`staff.csv`, `service_items.csv`, …).
    pub fn for_path(path: &Path, kind: Option<EntityKind>) -> Result<Format, String> {
        let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("json") => Ok(Format::Json),
            Some("csv") => {
                let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
                kind.or_else(|| EntityKind::parse(stem)).map(Format::Csv).ok_or_else(|| {
                    format!(
                        "cannot tell the kind of rows in {}: name the file <kind>.csv or pass --kind",
                        path.display()
                    )
                })
            }
            _ => Err(format!("{}: expected a .json or .csv file", path.display())),
        }
    }
}

/// The columns a CSV file of each kind may have.
fn csv_columns(kind: EntityKind) -> &'static [&'static str] {
    match kind {
        EntityKind::Regions => &["code", "name", "parent_code"],
        EntityKind::Departments => &["id", "uscc", "name", "parent_id", "region_code"],
        EntityKind::Halls => &["id", "name", "region_code"],
        EntityKind::Windows => &["id", "hall_id", "name", "role", "department_ids"],
        EntityKind::Devices => &["id", "kind", "hall_id", "window_id"],
        EntityKind::Staff => &["id", "name", "department_id"],
        EntityKind::ServiceItems => &["code", "name", "department_id"],
        EntityKind::Roster => &["window_id", "staff_id", "signed_in_at", "signed_out_at"],
        EntityKind::Tags => &["code", "name", "class", "negative"],
        EntityKind::Dimensions => &["code", "name", "class", "channels"],
    }
}

/// One bad row of an import file.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BadRow {
    /// Section (JSON) or kind (CSV).
    #[schema(value_type = String)]
    pub kind: EntityKind,
    /// Index of the row within its section, from 0.
    pub index: usize,
    /// Line in the file where the row starts, from 1.
    pub line: usize,
    /// The row's id or code, as far as it could be read.
    pub id: String,
    /// What is wrong with it.
    #[schema(value_type = Vec<Object>)]
    pub errors: Vec<FieldError>,
}

/// What an import did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ImportReport {
    /// Whether the file was imported (all of it); false means nothing was.
    pub imported: bool,
    /// Rows read.
    pub rows: usize,
    /// Rows per kind.
    pub counts: BTreeMap<String, usize>,
    /// Every bad row, by line.
    pub bad_rows: Vec<BadRow>,
    /// Directory version after the import (unchanged when nothing was imported).
    pub directory_version: i64,
}

/// Rows read from a file, with the line each started on.
#[derive(Debug, Default)]
pub struct Parsed {
    /// The rows that could be read.
    pub data: DirectoryData,
    /// (kind, index in `data`) → (line, index within the file's section).
    pub positions: HashMap<(EntityKind, usize), (usize, usize)>,
    /// Rows that could not be read at all.
    pub bad_rows: Vec<BadRow>,
}

/// How often progress is reported while reading a long file.
const PROGRESS_EVERY: usize = 10_000;

fn line_of(text: &str, raw: &RawValue) -> usize {
    let offset = (raw.get().as_ptr() as usize).saturating_sub(text.as_ptr() as usize).min(text.len());
    text[..offset].bytes().filter(|&b| b == b'\n').count() + 1
}

fn id_of(value: &serde_json::Value) -> String {
    ["id", "code"]
        .iter()
        .find_map(|k| value.get(k).and_then(|v| v.as_str()))
        .map(String::from)
        .or_else(|| {
            let w = value.get("window_id")?.as_str()?;
            let s = value.get("staff_id")?.as_str()?;
            Some(format!("{w}/{s}"))
        })
        .unwrap_or_default()
}

impl Parsed {
    /// Deserializes one row into `out` or records why it cannot be.
    fn take<T: DeserializeOwned>(
        &mut self,
        kind: EntityKind,
        line: usize,
        value: serde_json::Value,
        out: fn(&mut DirectoryData) -> &mut Vec<T>,
    ) {
        let index = self.data.len_of(kind) + self.bad_rows.iter().filter(|b| b.kind == kind).count();
        match serde_path_to_error::deserialize::<_, T>(&value) {
            Ok(row) => {
                self.positions.insert((kind, out(&mut self.data).len()), (line, index));
                out(&mut self.data).push(row);
            }
            Err(e) => self.bad_rows.push(BadRow { kind, index, line, id: id_of(&value), errors: vec![shape_error(e)] }),
        }
    }

    fn push(&mut self, kind: EntityKind, line: usize, value: serde_json::Value) {
        match kind {
            EntityKind::Regions => self.take(kind, line, value, |d| &mut d.regions),
            EntityKind::Departments => self.take(kind, line, value, |d| &mut d.departments),
            EntityKind::Halls => self.take(kind, line, value, |d| &mut d.halls),
            EntityKind::Windows => self.take(kind, line, value, |d| &mut d.windows),
            EntityKind::Devices => self.take(kind, line, value, |d| &mut d.devices),
            EntityKind::Staff => self.take(kind, line, value, |d| &mut d.staff),
            EntityKind::ServiceItems => self.take(kind, line, value, |d| &mut d.service_items),
            EntityKind::Roster => self.take(kind, line, value, |d| &mut d.roster),
            EntityKind::Tags => self.take(kind, line, value, |d| &mut d.tags),
            EntityKind::Dimensions => self.take(kind, line, value, |d| &mut d.dimensions),
        }
    }
}

/// A problem with the file as a whole (not JSON, unknown section, bad CSV header).
fn file_error(kind: EntityKind, line: usize, field: &str, zh: String, en: String) -> BadRow {
    BadRow { kind, index: 0, line, id: String::new(), errors: vec![FieldError::new(field, "file", zh, en)] }
}

/// Reads every row of `text`. Rows that cannot be read are in `bad_rows`, with their line.
pub fn parse(text: &str, format: Format, progress: &mut (dyn FnMut(String) + Send)) -> Parsed {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut parsed = Parsed::default();
    let mut n = 0usize;
    let mut tick = |n: usize| {
        if n % PROGRESS_EVERY == 0 {
            progress(format!("已读取 {n} 行 / read {n} rows"));
        }
    };
    match format {
        Format::Json => match serde_json::from_str::<BTreeMap<String, Vec<&RawValue>>>(text) {
            Ok(sections) => {
                for (name, raws) in sections {
                    let Some(kind) = EntityKind::parse(&name) else {
                        let all: Vec<&str> = EntityKind::ALL.iter().map(|k| k.as_str()).collect();
                        parsed.bad_rows.push(file_error(
                            EntityKind::Regions,
                            1,
                            &name,
                            format!("未知的目录分类 “{name}”,可选:{}", all.join("、")),
                            format!("unknown section '{name}', expected one of: {}", all.join(", ")),
                        ));
                        continue;
                    };
                    for raw in raws {
                        let line = line_of(text, raw);
                        let value = serde_json::from_str(raw.get()).unwrap_or(serde_json::Value::Null);
                        parsed.push(kind, line, value);
                        n += 1;
                        tick(n);
                    }
                }
            }
            Err(e) => parsed.bad_rows.push(file_error(
                EntityKind::Regions,
                e.line().max(1),
                "",
                format!("不是合法的目录 JSON 文件(第 {} 行第 {} 列):{e}", e.line(), e.column()),
                format!("not a directory JSON document (line {}, column {}): {e}", e.line(), e.column()),
            )),
        },
        Format::Csv(kind) => parse_csv(text, kind, &mut parsed, &mut |k| {
            n = k;
            tick(n)
        }),
    }
    parsed.bad_rows.sort_by_key(|b| (b.line, b.kind));
    parsed
}

fn parse_csv(text: &str, kind: EntityKind, parsed: &mut Parsed, tick: &mut dyn FnMut(usize)) {
    let mut reader = csv::ReaderBuilder::new().flexible(false).from_reader(text.as_bytes());
    let headers: Vec<String> = match reader.headers() {
        Ok(h) => h.iter().map(|c| c.trim().to_string()).collect(),
        Err(e) => {
            parsed.bad_rows.push(file_error(
                kind,
                1,
                "",
                format!("CSV 表头无法读取:{e}"),
                format!("cannot read the CSV header: {e}"),
            ));
            return;
        }
    };
    let allowed = csv_columns(kind);
    let unknown: Vec<&str> = headers.iter().map(String::as_str).filter(|h| !allowed.contains(h)).collect();
    if !unknown.is_empty() {
        parsed.bad_rows.push(file_error(
            kind,
            1,
            unknown[0],
            format!("{}文件不支持的列:{};可用列:{}", kind.label_zh(), unknown.join("、"), allowed.join(", ")),
            format!("unknown column(s) for {}: {}; allowed: {}", kind.as_str(), unknown.join(", "), allowed.join(", ")),
        ));
        return;
    }
    let mut i = 0;
    for record in reader.records() {
        i += 1;
        match record {
            Err(e) => {
                let line = e.position().map(|p| p.line() as usize).unwrap_or(0);
                parsed.bad_rows.push(BadRow {
                    kind,
                    index: i - 1,
                    line,
                    id: String::new(),
                    errors: vec![FieldError::new(
                        "",
                        "csv",
                        format!("CSV 行无法读取:{e}"),
                        format!("unreadable CSV row: {e}"),
                    )],
                });
            }
            Ok(rec) => {
                let line = rec.position().map(|p| p.line() as usize).unwrap_or(0);
                let mut obj = serde_json::Map::new();
                for (h, cell) in headers.iter().zip(rec.iter()) {
                    let cell = cell.trim();
                    if cell.is_empty() {
                        continue;
                    }
                    let value = match h.as_str() {
                        "department_ids" | "channels" => serde_json::Value::Array(
                            cell.split([';', '|']).map(|d| serde_json::Value::String(d.trim().to_string())).collect(),
                        ),
                        "negative" => match cell.to_ascii_lowercase().as_str() {
                            "true" | "1" | "yes" | "是" => serde_json::Value::Bool(true),
                            "false" | "0" | "no" | "否" => serde_json::Value::Bool(false),
                            _ => serde_json::Value::String(cell.to_string()),
                        },
                        _ => serde_json::Value::String(cell.to_string()),
                    };
                    obj.insert(h.clone(), value);
                }
                parsed.push(kind, line, serde_json::Value::Object(obj));
            }
        }
        tick(i);
    }
}

/// Imports `text`: reads and checks every row, then writes all of them in one transaction, or
/// nothing when any row is bad. `progress` receives human-readable progress lines.
pub async fn import(
    store: &Store,
    text: &str,
    format: Format,
    progress: &mut (dyn FnMut(String) + Send),
) -> Result<ImportReport, sqlx::Error> {
    let mut parsed = parse(text, format, progress);
    let rows = parsed.data.total() + parsed.bad_rows.len();
    progress(format!("已读取 {rows} 行,正在校验 / read {rows} rows, checking"));
    let existing = store.load_directory().await?;
    for bad in check_rows(&existing, &parsed.data) {
        // Report the row's place in the file, counting unreadable rows too.
        let (line, index) = parsed.positions.get(&(bad.kind, bad.index)).copied().unwrap_or((0, bad.index));
        parsed.bad_rows.push(BadRow { kind: bad.kind, index, line, id: bad.id, errors: bad.errors });
    }
    parsed.bad_rows.sort_by_key(|b| (b.line, b.kind));
    let counts = parsed.data.counts().into_iter().map(|(k, n)| (k.as_str().to_string(), n)).collect();
    if !parsed.bad_rows.is_empty() {
        progress(format!(
            "{} 行有错误,未导入任何数据 / {} bad rows, nothing imported",
            parsed.bad_rows.len(),
            parsed.bad_rows.len()
        ));
        return Ok(ImportReport {
            imported: false,
            rows,
            counts,
            bad_rows: parsed.bad_rows,
            directory_version: existing.version,
        });
    }
    progress(format!("校验通过,正在写入 {rows} 行 / all rows valid, writing"));
    store.import_directory(&parsed.data).await?;
    let version = store.directory_version().await?;
    progress(format!("已导入 {rows} 行,目录版本 {version} / imported {rows} rows, directory version {version}"));
    Ok(ImportReport { imported: true, rows, counts, bad_rows: vec![], directory_version: version })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_rows_carry_their_line_and_shape_errors_name_the_field() {
        let text = "{\n  \"halls\": [\n    {\"id\": \"H1\", \"name\": \"大厅\", \"region_code\": \"440300\"},\n    {\"id\": \"H2\", \"name\": 5, \"region_code\": \"440300\"}\n  ],\n  \"staff\": [\n    {\"id\": \"S1\", \"name\": \"张三\"}\n  ]\n}";
        let p = parse(text, Format::Json, &mut |_| {});
        assert_eq!(p.data.halls.len(), 1);
        assert_eq!(p.positions[&(EntityKind::Halls, 0)], (3, 0));
        let bad: Vec<(EntityKind, usize, usize, &str, &str)> =
            p.bad_rows.iter().map(|b| (b.kind, b.index, b.line, b.id.as_str(), b.errors[0].code)).collect();
        assert_eq!(
            bad,
            vec![(EntityKind::Halls, 1, 4, "H2", "invalid_type"), (EntityKind::Staff, 0, 7, "S1", "required")]
        );
    }

    #[test]
    fn csv_rows_carry_their_line_and_lists_split_on_semicolons() {
        let text = "\u{feff}id,hall_id,name,role,department_ids\nW1,H1,综合窗,both,D1;D2\nW2,H1,专窗,sideways,D1\n";
        let p = parse(text, Format::Csv(EntityKind::Windows), &mut |_| {});
        assert_eq!(p.data.windows.len(), 1);
        assert_eq!(p.data.windows[0].department_ids, vec!["D1", "D2"]);
        assert_eq!(p.positions[&(EntityKind::Windows, 0)], (2, 0));
        assert_eq!(p.bad_rows.len(), 1);
        assert_eq!((p.bad_rows[0].line, p.bad_rows[0].errors[0].field.as_str()), (3, "role"));
        let text = "code,name,class,channels\nservice_attitude,服务态度,conduct,window_evaluator;qr_code\n";
        let p = parse(text, Format::Csv(EntityKind::Dimensions), &mut |_| {});
        assert!(p.bad_rows.is_empty(), "{:?}", p.bad_rows);
        assert_eq!(p.data.dimensions[0].channels, vec!["window_evaluator", "qr_code"]);
    }

    #[test]
    fn unknown_csv_columns_and_sections_are_file_errors() {
        let p = parse("id,name,dept\nS1,张三,D1\n", Format::Csv(EntityKind::Staff), &mut |_| {});
        assert_eq!((p.bad_rows.len(), p.bad_rows[0].line, p.bad_rows[0].errors[0].field.as_str()), (1, 1, "dept"));
        let p = parse("{\"people\": []}", Format::Json, &mut |_| {});
        assert_eq!(p.bad_rows[0].errors[0].field, "people");
        let p = parse("{\"staff\": [", Format::Json, &mut |_| {});
        assert_eq!(p.bad_rows[0].errors[0].code, "file");
    }

    #[test]
    fn format_follows_the_file_name() {
        assert_eq!(Format::for_path(Path::new("dir/staff.csv"), None), Ok(Format::Csv(EntityKind::Staff)));
        assert_eq!(
            Format::for_path(Path::new("people.csv"), Some(EntityKind::Staff)),
            Ok(Format::Csv(EntityKind::Staff))
        );
        assert!(Format::for_path(Path::new("people.csv"), None).is_err());
        assert_eq!(Format::for_path(Path::new("city.JSON"), None), Ok(Format::Json));
    }
}
