//! Ingestion sources: `[sources.NAME]` in settings, and fetching their records over HTTP(S) or
//! from a local file.
//!
//! ```toml
//! [sources.orders]
//! url = "https://erp.example.com/api/sales"   # or: path = "drops/sales.csv"
//! format = "json"                             # json | csv
//! table = "sales"                             # the raw table the rows go to
//! records = "/data"                           # JSON pointer to the array of records ("": the body)
//! map = { units = "qty", item_id = "sku" }    # table column = source field (default: same name)
//! auth-env = "ERP_TOKEN"                      # header value read from this variable …
//! auth-header = "Authorization"               # … sent in this header (default Authorization)
//! pagination = "page"                         # none | page | next-url
//! page-param = "page"                         # page: ?page=1, 2, … until a page has no records
//! page-size-param = "per_page"                # … or fewer than page-size
//! page-size = 500
//! next-pointer = "/next"                      # next-url: JSON pointer to the next page's URL
//! watermark = "date"                          # source field; only records beyond the last one are kept
//! watermark-param = "since"                   # sent with the last watermark, so the server can filter
//! timeout = "30s"
//! retries = 3
//! backoff = "2s"
//! max-body-mb = 64                            # longest answer body read; a longer one fails
//! allow-origins = []                          # other origins next-url may go to (no credential)
//! allow-link-local = false                    # link-local / metadata addresses (see crate::reach)
//! ```
//!
//! The credential goes only to the source's own origin (scheme, host, port): redirects stay on
//! the origin of the request, a next page elsewhere is refused unless its origin is in
//! `allow-origins`, and then fetched without the credential; https never leads to http.
//!
//! A body that is not valid JSON (or not an array of records where `records` points) fails the
//! ingestion before anything is written; single bad rows are quarantined by [`super::records`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::records::RawRecord;
use crate::catalog::schema;
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::http::{self, RetryPolicy};
use crate::names::{valid_env_name, valid_name};
use crate::reach::{self, Reach};
use crate::secrets::Secrets;

/// The body's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// An array of objects (at `records`).
    Json,
    /// A header line, then one record per line.
    Csv,
}

/// How the pages of a source are reached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pagination {
    /// One request.
    #[default]
    None,
    /// A page-number query parameter, from `first-page` up, until a page has no records (or
    /// fewer than `page-size`).
    Page,
    /// Each JSON page names the next page's URL at `next-pointer`; stops when it is null or absent.
    NextUrl,
}

/// One `[sources.NAME]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct SourceSettings {
    /// An http(s) URL to GET.
    pub url: Option<String>,
    /// Or a local file (relative to the settings file).
    pub path: Option<PathBuf>,
    /// `json` or `csv`.
    pub format: Format,
    /// The raw table the rows are appended to.
    pub table: String,
    /// Table column = source field, for the columns whose names differ.
    #[serde(default)]
    pub map: BTreeMap<String, String>,
    /// JSON pointer to the array of records in a JSON body; empty: the body is the array.
    #[serde(default)]
    pub records: String,
    /// Header carrying the credential.
    #[serde(default = "default_auth_header")]
    pub auth_header: String,
    /// Environment variable holding the credential (the header's whole value, e.g. `Bearer …`).
    pub auth_env: Option<String>,
    /// How pages are reached.
    #[serde(default)]
    pub pagination: Pagination,
    /// Page-number query parameter.
    #[serde(default = "default_page_param")]
    pub page_param: String,
    /// Page-size query parameter, sent with `page-size`.
    pub page_size_param: Option<String>,
    /// Records per page; a shorter page is the last.
    pub page_size: Option<u32>,
    /// Number of the first page.
    #[serde(default = "default_first_page")]
    pub first_page: u64,
    /// JSON pointer to the next page's URL (`next-url`).
    #[serde(default = "default_next_pointer")]
    pub next_pointer: String,
    /// Most pages read in one ingestion; more is an error (nothing is written).
    #[serde(default = "default_max_pages")]
    pub max_pages: u32,
    /// Source field whose newest value is remembered; later runs keep only records beyond it.
    pub watermark: Option<String>,
    /// Query parameter that sends the remembered watermark to the server.
    pub watermark_param: Option<String>,
    /// Format of date fields when not ISO (`%m/%d/%Y`).
    pub date_format: Option<String>,
    /// Longest one request may take.
    #[serde(default = "default_timeout", with = "crate::period::duration")]
    pub timeout: Duration,
    /// Attempts after the first for a page.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Wait before the first retry; doubles each time.
    #[serde(default = "default_backoff", with = "crate::period::duration")]
    pub backoff: Duration,
    /// Longest answer body read, in MiB; a longer answer fails the ingestion.
    #[serde(default = "default_max_body_mb")]
    pub max_body_mb: u64,
    /// Other origins (`https://cdn.example.com`) next-url pagination may go to, without the credential.
    #[serde(default)]
    pub allow_origins: Vec<String>,
    /// Whether link-local and cloud metadata addresses may be reached.
    #[serde(default)]
    pub allow_link_local: bool,
}

fn default_auth_header() -> String {
    "Authorization".into()
}
fn default_page_param() -> String {
    "page".into()
}
fn default_first_page() -> u64 {
    1
}
fn default_next_pointer() -> String {
    "/next".into()
}
fn default_max_pages() -> u32 {
    1000
}
fn default_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_retries() -> u32 {
    RetryPolicy::default().retries
}
fn default_backoff() -> Duration {
    RetryPolicy::default().backoff
}
fn default_max_body_mb() -> u64 {
    64
}

impl SourceSettings {
    /// A source of `format` records for `table` at `url`, every other key at its default.
    pub fn http(url: &str, format: Format, table: &str) -> Self {
        Self {
            url: Some(url.to_string()),
            path: None,
            format,
            table: table.to_string(),
            map: BTreeMap::new(),
            records: String::new(),
            auth_header: default_auth_header(),
            auth_env: None,
            pagination: Pagination::None,
            page_param: default_page_param(),
            page_size_param: None,
            page_size: None,
            first_page: default_first_page(),
            next_pointer: default_next_pointer(),
            max_pages: default_max_pages(),
            watermark: None,
            watermark_param: None,
            date_format: None,
            timeout: default_timeout(),
            retries: default_retries(),
            backoff: default_backoff(),
            max_body_mb: default_max_body_mb(),
            allow_origins: Vec::new(),
            allow_link_local: false,
        }
    }

    /// What its requests may reach besides its own origin.
    pub fn reach(&self) -> Reach {
        let origins = self.allow_origins.iter().filter_map(|o| url::Url::parse(o).ok()).map(|u| u.origin()).collect();
        Reach { origins, link_local: self.allow_link_local }
    }

    /// The retry policy of its requests.
    pub fn policy(&self) -> RetryPolicy {
        RetryPolicy { timeout: self.timeout, retries: self.retries, backoff: self.backoff }
    }

    /// The source field a table column comes from.
    pub fn field_of<'a>(&'a self, column: &'a str) -> &'a str {
        self.map.get(column).map(String::as_str).unwrap_or(column)
    }

    /// Checks the table, mapping and options, and makes `path` absolute against `base`.
    pub fn resolve(&mut self, name: &str, base: &Path) -> std::result::Result<(), String> {
        valid_name(name).map_err(|m| format!("source name {m}"))?;
        match (&self.url, &self.path) {
            (Some(u), None) => {
                let url = url::Url::parse(u).map_err(|e| format!("url `{u}`: {e}"))?;
                if !matches!(url.scheme(), "http" | "https") {
                    return Err(format!("url `{u}` must be http or https (use `path` for files)"));
                }
                crate::reach::check_url(&url, &self.reach()).map_err(|m| format!("url {m}"))?;
                for o in &self.allow_origins {
                    let ok = url::Url::parse(o).is_ok_and(|x| matches!(x.scheme(), "http" | "https") && x.has_host());
                    if !ok {
                        return Err(format!(
                            "allow-origins: `{o}` is not an http(s) origin such as https://cdn.example.com"
                        ));
                    }
                }
            }
            (None, Some(p)) => {
                if self.pagination != Pagination::None {
                    return Err("pagination is for url sources".into());
                }
                if p.is_relative() {
                    self.path = Some(base.join(p));
                }
            }
            _ => return Err("give exactly one of `url` and `path`".into()),
        }
        let spec = schema::table(&self.table).ok_or_else(|| {
            let names: Vec<_> = schema::TABLES.iter().map(|t| t.name).collect();
            format!("no raw table `{}` (tables: {})", self.table, names.join(", "))
        })?;
        for k in self.map.keys() {
            if !spec.columns.iter().any(|c| c.name == k) {
                return Err(format!("map: table `{}` has no column `{k}`", self.table));
            }
        }
        if let Some(env) = &self.auth_env {
            valid_env_name(env).map_err(|m| format!("auth-env: {m}"))?;
        }
        if !(self.records.is_empty() || self.records.starts_with('/')) {
            return Err(format!("records `{}` must be a JSON pointer such as /data", self.records));
        }
        if self.pagination == Pagination::NextUrl && self.format != Format::Json {
            return Err("next-url pagination reads the next URL from a JSON body; use page for csv".into());
        }
        if self.page_size == Some(0) || self.max_pages == 0 || self.max_body_mb == 0 {
            return Err("page-size, max-pages and max-body-mb must be at least 1".into());
        }
        Ok(())
    }

    /// Where the records come from, for messages (never with credentials).
    pub fn origin(&self) -> String {
        match (&self.url, &self.path) {
            (Some(u), _) => u.clone(),
            (_, Some(p)) => p.display().to_string(),
            _ => "(nowhere)".into(),
        }
    }
}

/// Every record of the source, page by page; `since` is the remembered watermark, sent as
/// `watermark-param` when set.
pub async fn fetch(
    name: &str,
    s: &SourceSettings,
    since: Option<&str>,
    secrets: &Secrets,
    clock: &dyn Clock,
) -> Result<(Vec<RawRecord>, usize)> {
    let err = |message: String| Error::Source { name: name.to_string(), message };
    if let Some(path) = &s.path {
        let bytes = tokio::fs::read(path).await.map_err(|e| err(format!("{}: {e}", path.display())))?;
        let records = super::records::parse(s, &bytes, 1).map_err(|m| err(format!("{}: {m}", path.display())))?;
        return Ok((records, 1));
    }
    let base = s.url.clone().ok_or_else(|| err("no url or path".into()))?;
    let auth = match &s.auth_env {
        None => None,
        Some(var) => Some(secrets.get(var).ok_or_else(|| err(format!("the credential variable {var} is not set")))?),
    };
    let reach = s.reach();
    let start = url::Url::parse(&base).map_err(|e| err(format!("url `{base}`: {e}")))?;
    reach::check_url(&start, &reach).map_err(err)?;
    let client = http::client_with(s.timeout, &reach)?;
    let max_body = s.max_body_mb.saturating_mul(1024 * 1024);
    let mut out = Vec::new();
    let mut page_no = s.first_page;
    let mut next_url: Option<String> = None;
    for page in 1..=s.max_pages as usize {
        let (url, follow) = match &next_url {
            Some(u) => (u.clone(), true),
            None => (base.clone(), false),
        };
        let mut query: Vec<(String, String)> = Vec::new();
        if !follow {
            if let (Some(p), Some(v)) = (&s.watermark_param, since) {
                query.push((p.clone(), v.to_string()));
            }
            if s.pagination == Pagination::Page {
                query.push((s.page_param.clone(), page_no.to_string()));
                if let (Some(p), Some(n)) = (&s.page_size_param, s.page_size) {
                    query.push((p.clone(), n.to_string()));
                }
            }
        }
        // The credential goes to the source's own origin only.
        let own = url::Url::parse(&url).is_ok_and(|u| reach::same_origin(&start, &u));
        let build = || {
            let mut r = client.get(&url).query(&query);
            if let (Some(a), true) = (&auth, own) {
                r = r.header(s.auth_header.as_str(), a.as_str());
            }
            r
        };
        let target = format!("source `{name}` page {page}");
        let answer = http::send_capped(build, &s.policy(), max_body, clock, &target).await?;
        let records = super::records::parse(s, &answer.body, page).map_err(|m| err(format!("page {page}: {m}")))?;
        let n = records.len();
        out.extend(records);
        match s.pagination {
            Pagination::None => return Ok((out, page)),
            Pagination::Page => {
                if n == 0 || s.page_size.is_some_and(|size| n < size as usize) {
                    return Ok((out, page));
                }
                page_no += 1;
            }
            Pagination::NextUrl => {
                let body: serde_json::Value = serde_json::from_slice(&answer.body)
                    .map_err(|e| err(format!("page {page}: not valid JSON: {e}")))?;
                let next = body.pointer(&s.next_pointer).and_then(|v| v.as_str()).filter(|v| !v.is_empty());
                match next {
                    None => return Ok((out, page)),
                    Some(n) => {
                        let joined = url::Url::parse(&url)
                            .and_then(|u| u.join(n))
                            .map_err(|e| err(format!("page {page}: next URL `{n}`: {e}")))?;
                        reach::may_follow(&start, &joined, &reach.origins, &reach)
                            .map_err(|why| err(format!("page {page}: next URL refused: {why}; nothing was written")))?;
                        next_url = Some(joined.to_string());
                    }
                }
            }
        }
    }
    Err(err(format!("more than max-pages = {} pages; nothing was written", s.max_pages)))
}
