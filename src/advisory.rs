//! Advisories (pure): what the team recorded on a case (`#affected`,
//! `#fixed-in`, `#cve`, `#advisory`, SPEC §6) becomes machine-readable
//! advisories: the CNA container of a CVE JSON 5.1 record, a whole CVE record,
//! or an OSV record (`secmail case ID advisory --cve-json | --osv-json`,
//! SPEC §2).
//!
//! No I/O, no clock: the case's values and its dates go in, a
//! [`serde_json::Value`] or a one-sentence refusal comes out. What cannot make a
//! valid record (no advisory text, no affected versions, versions that cannot be
//! read or contradict each other, a reference that is not a URL) is refused
//! rather than written half-right: a wrong advisory tells users a vulnerable
//! version is safe.
//!
//! # What `#affected` and `#fixed-in` may say
//! `#affected` is a list of clauses separated by `,` or `||`; each clause is
//! - `all` (or `*`): every version up to the fixes;
//! - `< V` or `<= V`: every version below (or up to and including) `V`;
//! - `>= V`: every version from `V` on, up to the fixes;
//! - `>= V1 < V2` or `>= V1 <= V2`, and `V1 - V2` (both ends included);
//! - `V` or `= V`: that one version.
//!
//! A `>= V1` clause followed, after a comma, by a `< V2` clause is one range,
//! so the Cargo and PyPI spelling `>=1.2.0, <2.4.1` means what it means there;
//! npm's `||` always separates alternatives. `> V`,
//! `^V` and `~V` are refused with a hint: an exclusive start and caret or tilde
//! requirements have no faithful form in either format. A leading `v` is
//! dropped (`v1.2.3` is `1.2.3`, as OSV wants).
//!
//! `#fixed-in` lists the versions that carry the fix (`2.4.1, 3.0.2`). They
//! close the one open-ended clause (`all`, `>= V`): the first fix ends it, and
//! each further fix ends a range that starts at its own release line
//! (`all` + `2.4.1, 3.0.2` is `< 2.4.1` and `>= 3.0.0 < 3.0.2`). A fix that lies
//! inside an affected range, or is itself listed as affected, is refused; a
//! fix that ends no range (`1.0.0 - 2.4.0` fixed in `2.4.1`) is stated as an
//! unaffected version in CVE records.
//!
//! Versions are ordered by their dot-separated release numbers, then by what
//! follows as a SemVer pre-release (a PEP 440 `post` suffix sorts after its
//! release); the order only checks consistency and sorts ranges.
//!
//! # Identifiers
//! The OSV `id` is the CVE id when there is one (OSV §id: a database may index
//! its entries by CVE ids instead of a prefix of its own); without one it is
//! `x_<product>-<case id>` (e.g. `x_widget-SEC-7`), the `x_` prefix that OSV
//! 1.8.0 reserves for databases not aggregated by OSV.dev, hence
//! [`OSV_SCHEMA_VERSION`].
//!
//! # Validation
//! The tests below validate every kind of output against the official schemas
//! kept in `fixtures/schemas/` (sources in its README) and compare the
//! examples in `fixtures/advisory/` with what this module writes now
//! (`SECMAIL_BLESS=1` rewrites them).

use std::cmp::Ordering;
use std::sync::LazyLock;

use chrono::{DateTime, SecondsFormat, Utc};
use regex::Regex;
use serde_json::{Map, Value, json};

/// `dataVersion` of the CVE records [`cve_record`] writes (CVE JSON 5.1).
pub const CVE_DATA_VERSION: &str = "5.1";
/// `schema_version` of the OSV records [`osv`] writes: 1.8.0 is the first to
/// accept `x_` ids, which advisories without a CVE id need.
pub const OSV_SCHEMA_VERSION: &str = "1.8.0";
/// CVE JSON 5.1 `title` maximum length, in characters.
const CVE_TITLE_MAX: usize = 256;
/// CVE JSON 5.1 maximum length of a description or credit, in characters.
const CVE_TEXT_MAX: usize = 4096;
/// CVE JSON 5.1 maximum number of references.
const CVE_REFERENCES_MAX: usize = 512;
/// CVE JSON 5.1 maximum length of a URL (`uriType`).
const URL_MAX: usize = 2048;
/// CVE JSON 5.1 maximum length of a version string.
const VERSION_MAX: usize = 1024;

/// The ecosystems the OSV schema in `fixtures/schemas/osv_schema.json` defines
/// (`$defs.ecosystemName`); a project's ecosystem is one of them, optionally
/// followed by `:suffix` (`Debian:12`). A test keeps this list equal to the
/// schema's.
pub const OSV_ECOSYSTEMS: &[&str] = &[
    "AlmaLinux",
    "Alpaquita",
    "Alpine",
    "Android",
    "Azure Linux",
    "BellSoft Hardened Containers",
    "Bioconductor",
    "Bitnami",
    "Chainguard",
    "CleanStart",
    "ConanCenter",
    "CRAN",
    "crates.io",
    "Debian",
    "Docker Hardened Images",
    "Echo",
    "FreeBSD",
    "GHC",
    "GitHub Actions",
    "Go",
    "Hackage",
    "Hex",
    "Julia",
    "Kubernetes",
    "Linux",
    "Mageia",
    "Maven",
    "MinimOS",
    "npm",
    "NuGet",
    "opam",
    "openEuler",
    "openSUSE",
    "OSS-Fuzz",
    "Packagist",
    "Photon OS",
    "Pub",
    "PyPI",
    "Red Hat",
    "Rocky Linux",
    "Root",
    "RubyGems",
    "SUSE",
    "SwiftURL",
    "Ubuntu",
    "VSCode",
    "Wolfi",
];

/// Ecosystems whose versions are SemVer 2.0: there, SemVer-shaped versions get
/// OSV `SEMVER` ranges and CVE `semver` version types. Elsewhere (a Debian
/// revision `1.2-1` looks like a SemVer pre-release but sorts after `1.2`)
/// the ecosystem's own ordering applies.
const SEMVER_ECOSYSTEMS: &[&str] = &["crates.io", "npm", "Go", "Hex", "Pub", "SwiftURL"];

/// SemVer 2.0 as semver.org gives it, without a leading `v`.
static SEMVER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$",
    )
    .expect("the SemVer regex compiles")
});

/// A CVE id as the CVE schema's `cveId` has it.
static CVE_ID: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^CVE-[0-9]{4}-[0-9]{4,19}$").expect("the CVE id regex compiles"));

/// The project an advisory is about (from the config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    /// Who makes the product, as CVE `affected[].vendor` names it.
    pub vendor: String,
    /// The product's name: CVE `affected[].product`, and the OSV id of an
    /// advisory without a CVE id.
    pub product: String,
    /// OSV ecosystem of the package (`crates.io`, `PyPI`, `npm`, `Go`,
    /// `Debian:12`, ...): names the OSV package, decides how versions are
    /// ordered and which CVE package collection the package is in.
    pub ecosystem: String,
    /// The package's name in that ecosystem.
    pub package: String,
    /// Source repository URL: a reference of every advisory, and the only one
    /// when the team gave none (a CVE record needs at least one).
    pub repository: Option<String>,
}

/// What the team recorded on one case, borrowed from it.
#[derive(Debug, Clone)]
pub struct Advisory<'a> {
    /// The case id (`SEC-4`): names an OSV record that has no CVE id.
    pub case_id: &'a str,
    /// From `#cve` (`CVE-2026-1234`).
    pub cve: Option<&'a str>,
    /// One line: CVE `title`, OSV `summary`.
    pub title: &'a str,
    /// The `#advisory` text (may be several lines): CVE description, OSV
    /// `details`.
    pub description: &'a str,
    /// From `#affected` (see the module docs for what it may say).
    pub affected: Option<&'a str>,
    /// From `#fixed-in`: the versions that carry the fix.
    pub fixed_in: Option<&'a str>,
    /// Who found it, credited as finder.
    pub credit: Option<&'a str>,
    /// When the advisory is (or was) published.
    pub published: DateTime<Utc>,
    /// When it last changed.
    pub modified: DateTime<Utc>,
    /// URLs: the fix, the project's own advisory, write-ups.
    pub references: Vec<String>,
}

/// The affected versions of a case, read from `#affected` and `#fixed-in`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versions {
    /// Ranges of affected versions, sorted by where they start, not
    /// overlapping.
    pub ranges: Vec<AffectedRange>,
    /// Single affected versions named one by one, sorted.
    pub listed: Vec<String>,
    /// Versions that carry the fix, sorted; those that end no range are
    /// reported as unaffected versions in CVE records.
    pub fixed: Vec<String>,
}

/// A run of affected versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AffectedRange {
    /// The first affected version; `None`: from the very first version
    /// (written `0` in both formats).
    pub introduced: Option<String>,
    /// Where the run ends.
    pub end: RangeEnd,
}

/// Where a run of affected versions ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeEnd {
    /// Before this version (the first unaffected one, usually the fix): OSV
    /// `fixed`, CVE `lessThan`.
    Fixed(String),
    /// With this version, included: OSV `last_affected`, CVE
    /// `lessThanOrEqual`.
    LastAffected(String),
    /// Not fixed yet: every later version is affected.
    Unfixed,
}

impl Versions {
    /// Whether every version named is SemVer 2.0.
    pub fn is_semver(&self) -> bool {
        let ends = self.ranges.iter().filter_map(|r| match &r.end {
            RangeEnd::Fixed(v) | RangeEnd::LastAffected(v) => Some(v),
            RangeEnd::Unfixed => None,
        });
        let starts = self.ranges.iter().filter_map(|r| r.introduced.as_ref());
        starts.chain(ends).chain(&self.listed).all(|v| SEMVER.is_match(v))
    }
}

impl AffectedRange {
    /// Whether `version` is in this range.
    fn contains(&self, version: &str) -> bool {
        let started = self.introduced.as_deref().is_none_or(|s| cmp_versions(s, version).is_le());
        started
            && match &self.end {
                RangeEnd::Fixed(e) => cmp_versions(version, e).is_lt(),
                RangeEnd::LastAffected(e) => cmp_versions(version, e).is_le(),
                RangeEnd::Unfixed => true,
            }
    }

    /// The range as `#affected` would say it, for messages.
    fn describe(&self) -> String {
        let start = self.introduced.as_deref().map(|s| format!(">={s}"));
        let end = match &self.end {
            RangeEnd::Fixed(e) => Some(format!("<{e}")),
            RangeEnd::LastAffected(e) => Some(format!("<={e}")),
            RangeEnd::Unfixed => None,
        };
        match (start, end) {
            (Some(s), Some(e)) => format!("{s} {e}"),
            (Some(s), None) => s,
            (None, Some(e)) => e,
            (None, None) => "all".to_owned(),
        }
    }
}

/// Reads `#affected` and `#fixed-in` into [`Versions`]; refuses, in one line
/// naming what could not be read, text that is not versions or ranges, or
/// that contradicts itself.
pub fn parse_versions(affected: Option<&str>, fixed_in: Option<&str>) -> Result<Versions, String> {
    let fixed = parse_fixed(fixed_in.unwrap_or(""))?;
    let affected = affected.map(str::trim).filter(|s| !s.is_empty()).ok_or_else(|| {
        "no affected versions: record them with #affected (e.g. \"< 2.4.1\", \">=1.2.0 <2.4.1\" or \"all\")".to_owned()
    })?;
    let clauses = parse_affected(affected)?;
    resolve(clauses, fixed)
}

/// One clause of `#affected`, before the fixes are applied.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Clause {
    /// One version.
    Exact(String),
    /// A run of versions.
    Range { from: Option<String>, to: Upper },
}

/// The upper end of a clause.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Upper {
    /// Open: ends at a fix, if any.
    Open,
    /// `< V`.
    Below(String),
    /// `<= V`, `V1 - V2`.
    Through(String),
}

/// The examples every `#affected` error ends with.
const AFFECTED_HINT: &str =
    "write e.g. \"< 2.4.1\", \">=1.2.0 <2.4.1\", \"1.0.0 - 2.4.0\", \"2.3.0, 2.3.1\" or \"all\"";

fn parse_fixed(text: &str) -> Result<Vec<String>, String> {
    let mut fixed = Vec::new();
    for token in text.split(|c: char| c == ',' || c.is_whitespace()).filter(|t| !t.is_empty()) {
        let version =
            normalize_version(token).ok_or_else(|| format!("#fixed-in: cannot read {token:?} as a version"))?;
        fixed.push(version);
    }
    sort_dedup(&mut fixed);
    Ok(fixed)
}

fn parse_affected(text: &str) -> Result<Vec<Clause>, String> {
    let mut clauses: Vec<Clause> = Vec::new();
    for alternative in text.split("||") {
        clauses.extend(parse_comma_list(alternative)?);
    }
    let all = Clause::Range { from: None, to: Upper::Open };
    if clauses.len() > 1 && clauses.contains(&all) {
        return Err(format!("#affected: \"all\" cannot be combined with other versions in {text:?}"));
    }
    Ok(clauses)
}

/// The clauses between two `||`: a `>= V1` clause directly followed by a
/// `< V2` (or `<= V2`) clause is one range, as Cargo and PyPI read a comma;
/// npm's `||` always separates.
fn parse_comma_list(text: &str) -> Result<Vec<Clause>, String> {
    let mut clauses: Vec<Clause> = Vec::new();
    for piece in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let clause = parse_clause(piece)?;
        if let (Some(Clause::Range { from: Some(_), to: to @ Upper::Open }), Clause::Range { from: None, to: upper }) =
            (clauses.last_mut(), &clause)
            && *upper != Upper::Open
        {
            *to = upper.clone();
            continue;
        }
        clauses.push(clause);
    }
    Ok(clauses)
}

fn parse_clause(piece: &str) -> Result<Clause, String> {
    if matches!(piece.to_ascii_lowercase().as_str(), "all" | "*" | "all versions") {
        return Ok(Clause::Range { from: None, to: Upper::Open });
    }
    if let Some((from, through)) = piece.split_once(" - ") {
        let (from, through) = (version_in(piece, from.trim())?, version_in(piece, through.trim())?);
        return Ok(Clause::Range { from: Some(from), to: Upper::Through(through) });
    }
    let pairs = operator_pairs(piece)?;
    match pairs.as_slice() {
        [(op, v)] => single(piece, op, v),
        [a, b] => range(piece, a, b),
        _ => Err(format!("#affected: cannot read {piece:?}; {AFFECTED_HINT}")),
    }
}

/// Splits `>=1.2.0 <2.4.1` into `(">=", "1.2.0"), ("<", "2.4.1")`; versions
/// are normalized.
fn operator_pairs(piece: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    let mut rest = piece.trim_start();
    while !rest.is_empty() {
        let op_len = rest.find(|c: char| !matches!(c, '<' | '>' | '=' | '!' | '^' | '~')).unwrap_or(rest.len());
        let (op, after) = rest.split_at(op_len);
        let after = after.trim_start();
        let v_len = after.find(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | '=')).unwrap_or(after.len());
        let (token, tail) = after.split_at(v_len);
        pairs.push((op.to_owned(), version_in(piece, token)?));
        rest = tail.trim_start();
    }
    Ok(pairs)
}

fn single(piece: &str, op: &str, v: &str) -> Result<Clause, String> {
    let v = v.to_owned();
    match op {
        "" | "=" | "==" => Ok(Clause::Exact(v)),
        ">=" => Ok(Clause::Range { from: Some(v), to: Upper::Open }),
        "<" => Ok(Clause::Range { from: None, to: Upper::Below(v) }),
        "<=" => Ok(Clause::Range { from: None, to: Upper::Through(v) }),
        _ => Err(unsupported_operator(piece, op)),
    }
}

fn range(piece: &str, (op_a, a): &(String, String), (op_b, b): &(String, String)) -> Result<Clause, String> {
    let ((_, from), (op_to, to)) = match (op_a.as_str(), op_b.as_str()) {
        (">=", "<" | "<=") => ((op_a, a), (op_b, b)),
        ("<" | "<=", ">=") => ((op_b, b), (op_a, a)),
        (op @ (">" | "^" | "~" | "~=" | "!="), _) | (_, op @ (">" | "^" | "~" | "~=" | "!=")) => {
            return Err(unsupported_operator(piece, op));
        }
        _ => return Err(format!("#affected: cannot read {piece:?} as a range; {AFFECTED_HINT}")),
    };
    let to = if op_to == "<" { Upper::Below(to.clone()) } else { Upper::Through(to.clone()) };
    Ok(Clause::Range { from: Some(from.clone()), to })
}

fn unsupported_operator(piece: &str, op: &str) -> String {
    match op {
        ">" => format!("#affected: {piece:?} starts after a version; write \">=\" with the first affected version"),
        "^" | "~" | "~=" => {
            format!("#affected: {piece:?} is a dependency requirement; write the range out, e.g. \">=1.2.0 <2.0.0\"")
        }
        _ => format!("#affected: cannot read {piece:?}; {AFFECTED_HINT}"),
    }
}

fn version_in(piece: &str, token: &str) -> Result<String, String> {
    normalize_version(token).ok_or_else(|| {
        if token.is_empty() {
            format!("#affected: {piece:?} lacks a version; {AFFECTED_HINT}")
        } else {
            format!("#affected: cannot read {token:?} in {piece:?} as a version; {AFFECTED_HINT}")
        }
    })
}

/// A version as both formats want it: a leading `v` dropped, starting with a
/// digit, without spaces or characters no version scheme uses.
fn normalize_version(token: &str) -> Option<String> {
    let v = match token.strip_prefix(['v', 'V']) {
        Some(rest) if rest.starts_with(|c: char| c.is_ascii_digit()) => rest,
        _ => token,
    };
    let well_formed = v.starts_with(|c: char| c.is_ascii_digit())
        && v.len() <= VERSION_MAX
        && v.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+' | '_' | '~' | ':' | '!'));
    well_formed.then(|| v.to_owned())
}

/// Applies the fixes to the clauses and checks that the result is one
/// consistent statement.
fn resolve(clauses: Vec<Clause>, fixed: Vec<String>) -> Result<Versions, String> {
    let mut ranges = Vec::new();
    let mut listed = Vec::new();
    let mut open: Option<Option<String>> = None;
    for clause in clauses {
        match clause {
            Clause::Exact(v) => listed.push(v),
            Clause::Range { from, to: Upper::Open } if open.is_none() => open = Some(from),
            Clause::Range { to: Upper::Open, .. } => {
                return Err("#affected: more than one range is open-ended; give each an end with \"<\"".to_owned());
            }
            Clause::Range { from, to: Upper::Below(e) } => ranges.push(closed(from, RangeEnd::Fixed(e))?),
            Clause::Range { from, to: Upper::Through(e) } => ranges.push(closed(from, RangeEnd::LastAffected(e))?),
        }
    }
    if let Some(from) = open {
        let ending: Vec<&String> = fixed
            .iter()
            .filter(|f| from.as_deref().is_none_or(|s| cmp_versions(s, f).is_lt()))
            .filter(|f| !ended_by(&ranges, f))
            .collect();
        ranges.extend(split_by_fixes(from, &ending)?);
    }
    ranges.sort_by(|a, b| cmp_start(&a.introduced, &b.introduced));
    check_disjoint(&ranges)?;
    sort_dedup(&mut listed);
    check_fixes(&ranges, &listed, &fixed)?;
    Ok(Versions { ranges, listed, fixed })
}

/// A range with a written end; refused when it holds no version.
fn closed(from: Option<String>, end: RangeEnd) -> Result<AffectedRange, String> {
    let range = AffectedRange { introduced: from, end };
    let empty = match (&range.introduced, &range.end) {
        (Some(s), RangeEnd::Fixed(e)) => cmp_versions(s, e).is_ge(),
        (Some(s), RangeEnd::LastAffected(e)) => cmp_versions(s, e).is_gt(),
        _ => false,
    };
    if empty {
        return Err(format!("#affected: {:?} holds no version", range.describe()));
    }
    Ok(range)
}

/// The open-ended clause, ended by the fixes above its start: the first fix
/// ends it, each further fix ends a range from the start of its release line.
fn split_by_fixes(from: Option<String>, fixes: &[&String]) -> Result<Vec<AffectedRange>, String> {
    let Some((first, rest)) = fixes.split_first() else {
        return Ok(vec![AffectedRange { introduced: from, end: RangeEnd::Unfixed }]);
    };
    let mut ranges = vec![AffectedRange { introduced: from, end: RangeEnd::Fixed((*first).clone()) }];
    let mut previous = *first;
    for fix in rest {
        let start = release_line_start(previous, fix)?;
        ranges.push(AffectedRange { introduced: Some(start), end: RangeEnd::Fixed((*fix).clone()) });
        previous = fix;
    }
    Ok(ranges)
}

/// Where the release line of `fix` starts, given the previous (lower) fix:
/// `3.0.0` for `3.0.2` after `2.4.1`, `2.5.0` for `2.5.3` after `2.4.1`.
fn release_line_start(previous: &str, fix: &str) -> Result<String, String> {
    let (prev, fix_numbers) = (release_numbers(previous), release_numbers(fix));
    let shared = if number_eq(prev.first(), fix_numbers.first()) { 2 } else { 1 };
    if shared == 2 && number_eq(prev.get(1), fix_numbers.get(1)) {
        return Err(format!(
            "#fixed-in: {previous} and {fix} are on the same release line; say which versions each fixes with #affected ranges"
        ));
    }
    let start: Vec<&str> = fix_numbers.iter().enumerate().map(|(i, n)| if i < shared { *n } else { "0" }).collect();
    Ok(start.join("."))
}

fn check_disjoint(ranges: &[AffectedRange]) -> Result<(), String> {
    for pair in ranges.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        let apart = match (&a.end, &b.introduced) {
            (RangeEnd::Fixed(e), Some(s)) => cmp_versions(e, s).is_le(),
            (RangeEnd::LastAffected(e), Some(s)) => cmp_versions(e, s).is_lt(),
            _ => false,
        };
        if !apart {
            return Err(format!("#affected: {:?} and {:?} overlap", a.describe(), b.describe()));
        }
    }
    Ok(())
}

fn check_fixes(ranges: &[AffectedRange], listed: &[String], fixed: &[String]) -> Result<(), String> {
    for fix in fixed {
        if let Some(range) = ranges.iter().find(|r| r.contains(fix)) {
            return Err(format!("#fixed-in {fix} lies inside the affected range {:?}", range.describe()));
        }
        if listed.iter().any(|v| cmp_versions(v, fix).is_eq()) {
            return Err(format!("#fixed-in {fix} is also listed as affected"));
        }
    }
    Ok(())
}

/// Whether one of `ranges` ends where `fix` is.
fn ended_by(ranges: &[AffectedRange], fix: &str) -> bool {
    ranges.iter().any(|r| matches!(&r.end, RangeEnd::Fixed(e) if e == fix))
}

fn sort_dedup(versions: &mut Vec<String>) {
    versions.sort_by(|a, b| cmp_versions(a, b));
    versions.dedup_by(|a, b| cmp_versions(a, b).is_eq());
}

/// Orders range starts: from the first version (`None`) before any other.
fn cmp_start(a: &Option<String>, b: &Option<String>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(a), Some(b)) => cmp_versions(a, b),
    }
}

/// Orders two versions: release numbers first (a missing number is 0), then
/// the rest as a SemVer pre-release, except that a `post` suffix follows its
/// release; build metadata (`+...`) is ignored.
fn cmp_versions(a: &str, b: &str) -> Ordering {
    let (ra, rb) = (release_numbers(a), release_numbers(b));
    let len = ra.len().max(rb.len());
    (0..len)
        .map(|i| cmp_number(ra.get(i).copied().unwrap_or("0"), rb.get(i).copied().unwrap_or("0")))
        .find(|o| o.is_ne())
        .unwrap_or_else(|| cmp_suffix(suffix(a), suffix(b)))
}

/// The dot-separated numbers a version starts with: `["2", "4", "1"]` for
/// `2.4.1-rc.1`.
fn release_numbers(v: &str) -> Vec<&str> {
    let end = v.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(v.len());
    v[..end].split('.').filter(|n| !n.is_empty()).collect()
}

/// What follows the release numbers, without build metadata and separators.
fn suffix(v: &str) -> &str {
    let end = v.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(v.len());
    let rest = &v[end..];
    let rest = rest.split('+').next().unwrap_or("");
    rest.trim_start_matches(['.', '-', '_'])
}

fn number_eq(a: Option<&&str>, b: Option<&&str>) -> bool {
    cmp_number(a.copied().unwrap_or("0"), b.copied().unwrap_or("0")).is_eq()
}

/// Compares digit strings of any length as numbers.
fn cmp_number(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

fn cmp_suffix(a: &str, b: &str) -> Ordering {
    // pre-release < release < post-release (PEP 440 `.postN`)
    let rank = |s: &str| match s {
        "" => 1,
        s if s.starts_with("post") => 2,
        _ => 0,
    };
    rank(a).cmp(&rank(b)).then_with(|| cmp_identifiers(a, b))
}

/// SemVer 2.0 §11.4 precedence of dot-separated pre-release identifiers.
fn cmp_identifiers(a: &str, b: &str) -> Ordering {
    let mut ia = a.split('.');
    let mut ib = b.split('.');
    loop {
        let order = match (ia.next(), ib.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            (Some(x), Some(y)) => {
                let numeric = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
                match (numeric(x), numeric(y)) {
                    (true, true) => cmp_number(x, y),
                    (true, false) => Ordering::Less,
                    (false, true) => Ordering::Greater,
                    (false, false) => x.cmp(y),
                }
            }
        };
        if order.is_ne() {
            return order;
        }
    }
}

/// The `containers.cna` object of a CVE JSON 5.1 record, as a CNA submits it
/// (`cve publish` of cvelib adds `providerMetadata`, as does [`cve_record`]).
/// Needs no CVE id: the CNA that assigns one can take it as is.
pub fn cve_cna_container(p: &Project, a: &Advisory) -> Result<Value, String> {
    // The container does not carry the id, but a malformed #cve is refused
    // here as everywhere.
    cve_id(a)?;
    let versions = parse_versions(a.affected, a.fixed_in)?;
    let description = cve_text("advisory text", a.description)?;
    let title = one_line(a.title);
    if title.chars().count() > CVE_TITLE_MAX {
        return Err(format!("the title is longer than the {CVE_TITLE_MAX} characters a CVE title holds"));
    }
    let references = references(p, a)?;
    if references.is_empty() {
        return Err("no references: a CVE record needs one (give a URL or set the project's repository)".to_owned());
    }
    if references.len() > CVE_REFERENCES_MAX {
        return Err(format!("more than {CVE_REFERENCES_MAX} references: a CVE record holds no more"));
    }
    let mut cna = Map::new();
    if !title.is_empty() {
        cna.insert("title".into(), json!(title));
    }
    cna.insert("datePublic".into(), json!(timestamp(a.published)));
    cna.insert("descriptions".into(), json!([{ "lang": "en", "value": description }]));
    cna.insert("affected".into(), json!([cve_product(p, &versions)?]));
    let problem = if title.is_empty() { format!("Vulnerability in {}", p.product.trim()) } else { title };
    cna.insert(
        "problemTypes".into(),
        json!([{ "descriptions": [{ "lang": "en", "description": problem, "type": "text" }] }]),
    );
    cna.insert("references".into(), Value::Array(references.iter().map(Reference::cve).collect()));
    if let Some(credit) = credit(a)? {
        cna.insert("credits".into(), json!([{ "lang": "en", "value": credit, "type": "finder" }]));
    }
    Ok(Value::Object(cna))
}

/// A whole CVE JSON 5.1 record (state `PUBLISHED`) around
/// [`cve_cna_container`], with `assigner_org_id` (the CNA's organization UUID,
/// a version 4 UUID) as assigner and container provider. Needs a CVE id.
pub fn cve_record(p: &Project, a: &Advisory, assigner_org_id: &str) -> Result<Value, String> {
    let cve = cve_id(a)?
        .ok_or_else(|| "no CVE id: record one with #cve CVE-YYYY-NNNN before writing a CVE record".to_owned())?;
    let org = uuid::Uuid::parse_str(assigner_org_id)
        .ok()
        .filter(|u| {
            assigner_org_id.len() == 36 && u.get_version_num() == 4 && u.get_variant() == uuid::Variant::RFC4122
        })
        .ok_or_else(|| format!("the assigner org id {assigner_org_id:?} is not a version 4 UUID"))?;
    let mut cna = cve_cna_container(p, a)?;
    cna["providerMetadata"] = json!({ "orgId": org.hyphenated().to_string() });
    Ok(json!({
        "dataType": "CVE_RECORD",
        "dataVersion": CVE_DATA_VERSION,
        "cveMetadata": {
            "cveId": cve,
            "assignerOrgId": org.hyphenated().to_string(),
            "state": "PUBLISHED",
            "datePublished": timestamp(a.published),
            "dateUpdated": timestamp(a.modified),
        },
        "containers": { "cna": cna },
    }))
}

/// An OSV record (schema [`OSV_SCHEMA_VERSION`]); its id is the CVE id when
/// there is one, `x_<product>-<case id>` otherwise (see the module docs).
pub fn osv(p: &Project, a: &Advisory) -> Result<Value, String> {
    let cve = cve_id(a)?;
    let versions = parse_versions(a.affected, a.fixed_in)?;
    let details = a.description.trim();
    if details.is_empty() {
        return Err("no advisory text: write it with #advisory first".to_owned());
    }
    let mut record = Map::new();
    record.insert("schema_version".into(), json!(OSV_SCHEMA_VERSION));
    record.insert("id".into(), json!(cve.clone().unwrap_or_else(|| local_osv_id(p, a.case_id))));
    record.insert("modified".into(), json!(timestamp(a.modified)));
    record.insert("published".into(), json!(timestamp(a.published)));
    let summary = one_line(a.title);
    if !summary.is_empty() {
        record.insert("summary".into(), json!(summary));
    }
    record.insert("details".into(), json!(details));
    record.insert("affected".into(), json!([osv_affected(p, &versions)?]));
    let references = references(p, a)?;
    if !references.is_empty() {
        record.insert("references".into(), Value::Array(references.iter().map(Reference::osv).collect()));
    }
    if let Some(credit) = credit(a)? {
        record.insert("credits".into(), json!([{ "name": credit, "type": "FINDER" }]));
    }
    Ok(Value::Object(record))
}

/// `#cve` checked and upper-cased; `None` when the case has none.
fn cve_id(a: &Advisory) -> Result<Option<String>, String> {
    let Some(raw) = a.cve.map(str::trim).filter(|c| !c.is_empty()) else {
        return Ok(None);
    };
    let id = raw.to_ascii_uppercase();
    if !CVE_ID.is_match(&id) {
        return Err(format!("#cve {raw:?} is not a CVE id (CVE-YYYY-NNNN)"));
    }
    Ok(Some(id))
}

/// Text a CVE description holds: not empty, at most [`CVE_TEXT_MAX`]
/// characters.
fn cve_text(what: &str, text: &str) -> Result<String, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err(format!("no {what}: write it with #advisory first"));
    }
    let n = text.chars().count();
    if n > CVE_TEXT_MAX {
        return Err(format!("the {what} has {n} characters; a CVE description holds at most {CVE_TEXT_MAX}"));
    }
    Ok(text.to_owned())
}

fn credit(a: &Advisory) -> Result<Option<String>, String> {
    let Some(credit) = a.credit.map(one_line).filter(|c| !c.is_empty()) else {
        return Ok(None);
    };
    if credit.chars().count() > CVE_TEXT_MAX {
        return Err(format!("the credit is longer than {CVE_TEXT_MAX} characters"));
    }
    Ok(Some(credit))
}

/// One line: runs of white space (newlines included) become one space.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// RFC 3339 in UTC with `Z`, to the second: the form both formats accept.
fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A reference and what it points at.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Reference {
    url: String,
    kind: RefKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RefKind {
    /// A commit: the fix.
    Fix,
    /// A published security advisory of the project (GitHub's, ...).
    Advisory,
    /// The project's repository.
    Package,
    /// Anything else.
    Web,
}

impl Reference {
    fn cve(&self) -> Value {
        match self.kind {
            RefKind::Fix => json!({ "url": self.url, "tags": ["patch"] }),
            RefKind::Advisory => json!({ "url": self.url, "tags": ["vendor-advisory"] }),
            RefKind::Package | RefKind::Web => json!({ "url": self.url }),
        }
    }

    fn osv(&self) -> Value {
        let kind = match self.kind {
            RefKind::Fix => "FIX",
            RefKind::Advisory => "ADVISORY",
            RefKind::Package => "PACKAGE",
            RefKind::Web => "WEB",
        };
        json!({ "type": kind, "url": self.url })
    }
}

/// The advisory's references, then the repository; duplicates dropped, each
/// checked to be an http(s) URL.
fn references(p: &Project, a: &Advisory) -> Result<Vec<Reference>, String> {
    let given = a.references.iter().map(|u| (u.trim(), None));
    let repository = p.repository.iter().map(|u| (u.trim(), Some(RefKind::Package)));
    let mut out: Vec<Reference> = Vec::new();
    for (url, kind) in given.chain(repository).filter(|(u, _)| !u.is_empty()) {
        check_url(url)?;
        if out.iter().any(|r| r.url == url) {
            continue;
        }
        out.push(Reference { url: url.to_owned(), kind: kind.unwrap_or_else(|| classify(url)) });
    }
    Ok(out)
}

fn classify(url: &str) -> RefKind {
    if url.contains("/commit/") {
        RefKind::Fix
    } else if url.contains("/security/advisories/") {
        RefKind::Advisory
    } else {
        RefKind::Web
    }
}

/// An absolute http(s) URL with a host and nothing a URL cannot hold.
fn check_url(url: &str) -> Result<(), String> {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
    let host = rest.map(|r| r.split(['/', '?', '#']).next().unwrap_or(""));
    let clean =
        url.len() <= URL_MAX && !url.chars().any(|c| c.is_whitespace() || c.is_control() || "<>\"{}|\\^`".contains(c));
    if host.is_none_or(str::is_empty) || !clean {
        return Err(format!("the reference {url:?} is not an http(s) URL"));
    }
    Ok(())
}

/// The CVE `affected` entry of the project.
fn cve_product(p: &Project, versions: &Versions) -> Result<Value, String> {
    let (vendor, product) = (p.vendor.trim(), p.product.trim());
    if vendor.is_empty() || product.is_empty() {
        return Err("the project's vendor and product must both be named for a CVE record".to_owned());
    }
    let mut entry = Map::new();
    entry.insert("vendor".into(), json!(vendor));
    entry.insert("product".into(), json!(product));
    let package = p.package.trim();
    if let Some(collection) = collection_url(&p.ecosystem).filter(|_| !package.is_empty()) {
        entry.insert("collectionURL".into(), json!(collection));
        entry.insert("packageName".into(), json!(package));
    }
    if let Some(repo) = p.repository.as_deref().map(str::trim).filter(|r| !r.is_empty()) {
        check_url(repo)?;
        entry.insert("repo".into(), json!(repo));
    }
    entry.insert("defaultStatus".into(), json!("unaffected"));
    entry.insert("versions".into(), Value::Array(cve_versions(p, versions)));
    Ok(Value::Object(entry))
}

fn cve_versions(p: &Project, versions: &Versions) -> Vec<Value> {
    let version_type = cve_version_type(p, versions);
    let mut out: Vec<Value> = versions
        .ranges
        .iter()
        .map(|r| {
            let start = r.introduced.as_deref().unwrap_or("0");
            let mut entry = json!({ "version": start, "status": "affected", "versionType": version_type });
            match &r.end {
                RangeEnd::Fixed(e) => entry["lessThan"] = json!(e),
                RangeEnd::LastAffected(e) => entry["lessThanOrEqual"] = json!(e),
                RangeEnd::Unfixed => entry["lessThan"] = json!("*"),
            }
            entry
        })
        .collect();
    out.extend(versions.listed.iter().map(|v| json!({ "version": v, "status": "affected" })));
    let unaffected = versions.fixed.iter().filter(|f| !ended_by(&versions.ranges, f));
    out.extend(unaffected.map(|v| json!({ "version": v, "status": "unaffected" })));
    out
}

/// The CVE `versionType` for the project's versions: `semver` exactly where
/// OSV gets `SEMVER` ranges, the ecosystem's own scheme where the CVE schema
/// names one, `custom` (the ecosystem's ordering) elsewhere.
fn cve_version_type(p: &Project, versions: &Versions) -> &'static str {
    match ecosystem_name(&p.ecosystem) {
        e if SEMVER_ECOSYSTEMS.contains(&e) && versions.is_semver() => "semver",
        "PyPI" => "python",
        "Maven" => "maven",
        "AlmaLinux" | "Red Hat" | "Rocky Linux" | "SUSE" | "openSUSE" | "openEuler" | "Mageia" | "Photon OS" => "rpm",
        _ => "custom",
    }
}

/// The ecosystem without its `:suffix` (`Debian` for `Debian:12`).
fn ecosystem_name(ecosystem: &str) -> &str {
    let ecosystem = ecosystem.trim();
    ecosystem.split_once(':').map_or(ecosystem, |(name, _)| name)
}

/// The CVE `collectionURL` of an ecosystem's packages, as the CVE schema's
/// examples spell them (Go's CNA uses pkg.go.dev).
fn collection_url(ecosystem: &str) -> Option<&'static str> {
    Some(match ecosystem_name(ecosystem) {
        "crates.io" => "https://crates.io",
        "PyPI" => "https://pypi.python.org",
        "npm" => "https://registry.npmjs.org",
        "Go" => "https://pkg.go.dev",
        "Maven" => "https://repo.maven.apache.org/maven2",
        "RubyGems" => "https://rubygems.org",
        "NuGet" => "https://nuget.org/packages",
        "Packagist" => "https://packagist.org",
        "Pub" => "https://pub.dev",
        "Hex" => "https://repo.hex.pm",
        "Hackage" => "https://hackage.haskell.org",
        "CRAN" => "https://cran.r-project.org",
        "Debian" => "https://packages.debian.org",
        _ => return None,
    })
}

/// The OSV `affected` entry of the project.
fn osv_affected(p: &Project, versions: &Versions) -> Result<Value, String> {
    let ecosystem = p.ecosystem.trim();
    if !OSV_ECOSYSTEMS.contains(&ecosystem_name(ecosystem)) {
        return Err(format!(
            "the project's ecosystem {ecosystem:?} is not an OSV ecosystem (e.g. \"crates.io\", \"PyPI\", \"npm\", \"Go\", \"Debian\")"
        ));
    }
    let name = p.package.trim();
    if name.is_empty() {
        return Err("the project's package is not named: an OSV record needs it".to_owned());
    }
    let mut package = json!({ "ecosystem": ecosystem, "name": name });
    if let Some(purl) = purl(ecosystem, name) {
        package["purl"] = json!(purl);
    }
    let mut entry = Map::new();
    entry.insert("package".into(), package);
    let range_type = if SEMVER_ECOSYSTEMS.contains(&ecosystem_name(ecosystem)) && versions.is_semver() {
        "SEMVER"
    } else {
        "ECOSYSTEM"
    };
    if !versions.ranges.is_empty() {
        let ranges = versions.ranges.iter().map(|r| json!({ "type": range_type, "events": osv_events(r) }));
        entry.insert("ranges".into(), Value::Array(ranges.collect()));
    }
    if !versions.listed.is_empty() {
        entry.insert("versions".into(), json!(versions.listed));
    }
    Ok(Value::Object(entry))
}

fn osv_events(r: &AffectedRange) -> Vec<Value> {
    let mut events = vec![json!({ "introduced": r.introduced.as_deref().unwrap_or("0") })];
    match &r.end {
        RangeEnd::Fixed(e) => events.push(json!({ "fixed": e })),
        RangeEnd::LastAffected(e) => events.push(json!({ "last_affected": e })),
        RangeEnd::Unfixed => {}
    }
    events
}

/// The package URL (github.com/package-url/purl-spec) of a package, for the
/// ecosystems whose purl type is plain; `None` elsewhere (it is optional).
fn purl(ecosystem: &str, name: &str) -> Option<String> {
    let plain = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "._-~/".contains(c));
    let (kind, path) = match ecosystem_name(ecosystem) {
        "crates.io" => ("cargo", name.to_owned()),
        "npm" => ("npm", name.strip_prefix('@').map_or_else(|| name.to_owned(), |scoped| format!("%40{scoped}"))),
        "PyPI" => ("pypi", pypi_normalized(name)),
        "Go" => ("golang", name.to_owned()),
        "RubyGems" => ("gem", name.to_owned()),
        "Maven" => ("maven", name.replacen(':', "/", 1)),
        "Packagist" => ("composer", name.to_ascii_lowercase()),
        _ => return None,
    };
    let check = path.strip_prefix("%40").unwrap_or(&path);
    plain(check).then(|| format!("pkg:{kind}/{path}"))
}

/// PEP 503 normalized name: lower case, runs of `-`, `_`, `.` as one `-`.
fn pypi_normalized(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    let parts: Vec<&str> = lower.split(['-', '_', '.']).filter(|s| !s.is_empty()).collect();
    parts.join("-")
}

/// The OSV id of an advisory without a CVE id: `x_<product>-<case id>`, with
/// anything but letters, digits, `.`, `_` and `-` in the product made `-`.
fn local_osv_id(p: &Project, case_id: &str) -> String {
    let product: String = p
        .product
        .trim()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '-' })
        .collect();
    format!("x_{product}-{}", case_id.trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const SCHEMAS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/schemas/");
    const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/advisory/");
    /// A placeholder organization UUID (version 4 in form, owned by no one).
    const ORG: &str = "00000000-0000-4000-8000-000000000000";

    fn schema(name: &str) -> Value {
        let text = std::fs::read_to_string(format!("{SCHEMAS}{name}")).expect("schema file");
        serde_json::from_str(&text).expect("schema is JSON")
    }

    /// The official CVE JSON 5.1 record schema (draft-07), formats checked.
    static CVE_SCHEMA: LazyLock<jsonschema::Validator> = LazyLock::new(|| {
        jsonschema::draft7::options()
            .should_validate_formats(true)
            .build(&schema("CVE_Record_Format_bundled.json"))
            .expect("the CVE schema compiles")
    });

    /// The official OSV schema (draft 2020-12), formats checked.
    static OSV_SCHEMA: LazyLock<jsonschema::Validator> = LazyLock::new(|| {
        jsonschema::draft202012::options()
            .should_validate_formats(true)
            .build(&schema("osv_schema.json"))
            .expect("the OSV schema compiles")
    });

    fn assert_valid(validator: &jsonschema::Validator, instance: &Value, what: &str) {
        let errors = validator.iter_errors(instance).into_errors();
        assert!(errors.is_empty(), "{what} is not valid:\n{errors}\n{}", pretty(instance));
    }

    fn pretty(v: &Value) -> String {
        serde_json::to_string_pretty(v).expect("serializes") + "\n"
    }

    fn widget() -> Project {
        Project {
            vendor: "Example Org".into(),
            product: "widget".into(),
            ecosystem: "crates.io".into(),
            package: "widget".into(),
            repository: Some("https://github.com/example/widget".into()),
        }
    }

    fn at(day: u32, hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, day, hour, 0, 0).unwrap()
    }

    /// The SEC-4 advisory the fixtures show: a CVE, a semver range, a fix,
    /// a credit, a commit and an advisory URL.
    fn sec4() -> Advisory<'static> {
        Advisory {
            case_id: "SEC-4",
            cve: Some("CVE-2026-1234"),
            title: "Path traversal in widget's archive extraction",
            description: "widget before 2.4.1 extracts archive entries whose names contain `../` outside the \
                          target directory.\n\nAn attacker who can make an application unpack a crafted archive \
                          can overwrite any file the application may write.",
            affected: Some(">=1.2.0 <2.4.1"),
            fixed_in: Some("2.4.1"),
            credit: Some("Rita Reporter"),
            published: at(10, 12),
            modified: at(11, 9),
            references: vec![
                "https://github.com/example/widget/security/advisories/GHSA-abcd-efgh-ijkl".into(),
                "https://github.com/example/widget/commit/0123456789abcdef0123456789abcdef01234567".into(),
            ],
        }
    }

    /// SEC-7: no CVE id, no references but the repository, no credit, an
    /// explicit list of versions.
    fn sec7() -> Advisory<'static> {
        Advisory {
            case_id: "SEC-7",
            cve: None,
            title: "Denial of service in the config parser",
            description: "A deeply nested config file exhausts the stack.",
            affected: Some("2.3.0, 2.3.1"),
            fixed_in: Some("2.3.2"),
            credit: None,
            published: at(20, 8),
            modified: at(20, 8),
            references: vec![],
        }
    }

    /// Builds all three outputs and validates each against its schema; an
    /// advisory without a CVE id gets its container checked inside a record
    /// with a placeholder id.
    fn validate_all(p: &Project, a: &Advisory) -> (Value, Value) {
        let container = cve_cna_container(p, a).expect("container");
        let record = match cve_record(p, a, ORG) {
            Ok(record) => {
                assert_eq!(record["containers"]["cna"]["descriptions"], container["descriptions"]);
                record
            }
            Err(e) => {
                assert!(a.cve.is_none(), "{e}");
                let mut wrapped = cve_record(p, &Advisory { cve: Some("CVE-2026-99999"), ..a.clone() }, ORG).unwrap();
                wrapped["containers"]["cna"] = container.clone();
                wrapped["containers"]["cna"]["providerMetadata"] = json!({ "orgId": ORG });
                wrapped
            }
        };
        assert_valid(&CVE_SCHEMA, &record, &format!("the CVE record of {}", a.case_id));
        let osv = osv(p, a).expect("osv");
        assert_valid(&OSV_SCHEMA, &osv, &format!("the OSV record of {}", a.case_id));
        (record, osv)
    }

    fn range(from: Option<&str>, end: RangeEnd) -> AffectedRange {
        AffectedRange { introduced: from.map(str::to_owned), end }
    }

    fn fixed(v: &str) -> RangeEnd {
        RangeEnd::Fixed(v.into())
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn reads_a_semver_range_and_its_fix() {
        let v = parse_versions(Some(">=1.2.0 <2.4.1"), Some("2.4.1")).unwrap();
        assert_eq!(v.ranges, vec![range(Some("1.2.0"), fixed("2.4.1"))]);
        assert_eq!(v.fixed, strings(&["2.4.1"]));
        assert!(v.is_semver());
        // The Cargo/PyPI spelling with a comma, and an attached operator.
        assert_eq!(parse_versions(Some(">= 1.2.0, <2.4.1"), None).unwrap().ranges, v.ranges);
        // npm's `||` is always "or".
        let or = parse_versions(Some(">=3.0.0 || <2.4.1"), Some("3.1.0")).unwrap();
        assert_eq!(or.ranges, vec![range(None, fixed("2.4.1")), range(Some("3.0.0"), fixed("3.1.0"))]);
    }

    #[test]
    fn reads_below_through_and_hyphen_ranges() {
        let below = parse_versions(Some("< 2.4.1"), None).unwrap();
        assert_eq!(below.ranges, vec![range(None, fixed("2.4.1"))]);
        let through = parse_versions(Some("<=2.4.0"), Some("2.4.1")).unwrap();
        assert_eq!(through.ranges, vec![range(None, RangeEnd::LastAffected("2.4.0".into()))]);
        let hyphen = parse_versions(Some("1.0.0 - 2.4.0"), None).unwrap();
        assert_eq!(hyphen.ranges, vec![range(Some("1.0.0"), RangeEnd::LastAffected("2.4.0".into()))]);
    }

    #[test]
    fn reads_a_list_and_drops_a_leading_v() {
        let v = parse_versions(Some("v2.3.1, 2.3.0 || =2.3.1"), Some("v2.3.2")).unwrap();
        assert!(v.ranges.is_empty());
        assert_eq!(v.listed, strings(&["2.3.0", "2.3.1"]));
        assert_eq!(v.fixed, strings(&["2.3.2"]));
    }

    #[test]
    fn fixes_end_the_open_range_one_release_line_each() {
        let v = parse_versions(Some("all"), Some("3.0.2, 2.4.1")).unwrap();
        assert_eq!(v.ranges, vec![range(None, fixed("2.4.1")), range(Some("3.0.0"), fixed("3.0.2"))]);
        let v = parse_versions(Some(">=0.3.0"), Some("0.4.3 0.5.2")).unwrap();
        assert_eq!(v.ranges, vec![range(Some("0.3.0"), fixed("0.4.3")), range(Some("0.5.0"), fixed("0.5.2"))]);
        // A closed range keeps its own end; the open one takes the later fix.
        let v = parse_versions(Some("<1.4.2, >=2.0.0"), Some("1.4.2, 2.1.1")).unwrap();
        assert_eq!(v.ranges, vec![range(None, fixed("1.4.2")), range(Some("2.0.0"), fixed("2.1.1"))]);
        // Without a fix the range stays open.
        let v = parse_versions(Some("all"), None).unwrap();
        assert_eq!(v.ranges, vec![range(None, RangeEnd::Unfixed)]);
    }

    #[test]
    fn orders_versions_as_release_numbers_then_pre_releases() {
        for (a, b) in [
            ("1.9.0", "1.10.0"),
            ("2.0.0-rc.1", "2.0.0"),
            ("2.0.0-alpha", "2.0.0-alpha.1"),
            ("2.0.0-alpha.2", "2.0.0-alpha.10"),
            ("1.0rc1", "1.0"),
            ("1.0", "1.0.post1"),
            ("1.2", "1.2.1"),
            ("99999999999999999999.0", "100000000000000000000.0"),
        ] {
            assert_eq!(cmp_versions(a, b), Ordering::Less, "{a} < {b}");
            assert_eq!(cmp_versions(b, a), Ordering::Greater, "{b} > {a}");
        }
        assert_eq!(cmp_versions("1.2.0", "1.2"), Ordering::Equal);
        assert_eq!(cmp_versions("1.2.0+build.5", "1.2.0"), Ordering::Equal);
    }

    #[test]
    fn refuses_what_it_cannot_read_in_one_line() {
        let cases: &[(Option<&str>, Option<&str>, &str)] = &[
            (None, Some("2.4.1"), "no affected versions"),
            (Some("  "), None, "no affected versions"),
            (Some("latest"), None, "cannot read \"latest\""),
            (Some("> 1.2.0"), None, "write \">=\""),
            (Some("^1.2"), None, "dependency requirement"),
            (Some("~1.2"), None, "dependency requirement"),
            (Some(">=1.0 >=2.0"), None, "as a range"),
            (Some("<"), None, "lacks a version"),
            (Some("1.0 - "), None, "cannot read"),
            (Some("all, 1.0.0"), None, "\"all\" cannot be combined"),
            (Some(">=2.0.0 <1.0.0"), None, "holds no version"),
            (Some(">=1.0.0, >=2.0.0"), None, "more than one range is open-ended"),
            (Some("<2.0.0, >=1.5.0 <3.0.0"), None, "overlap"),
            (Some(">=1.2.0 <2.4.1"), Some("2.3.0"), "#fixed-in 2.3.0 lies inside"),
            (Some("2.3.0, 2.3.1"), Some("2.3.1"), "also listed as affected"),
            (Some("all"), Some("2.4.1, 2.4.3"), "same release line"),
            (Some("all"), Some("2.4.1, soon"), "#fixed-in: cannot read \"soon\""),
        ];
        for (affected, fixed_in, expected) in cases {
            let err = parse_versions(*affected, *fixed_in).expect_err(&format!("{affected:?} {fixed_in:?}"));
            assert!(err.contains(expected), "{affected:?} {fixed_in:?}: {err}");
            assert!(!err.contains('\n'), "one line: {err}");
        }
    }

    #[test]
    fn semver_range_validates_against_both_schemas() {
        let (record, osv) = validate_all(&widget(), &sec4());
        let versions = &record["containers"]["cna"]["affected"][0]["versions"];
        assert_eq!(
            versions,
            &json!([{ "version": "1.2.0", "lessThan": "2.4.1", "status": "affected", "versionType": "semver" }])
        );
        assert_eq!(osv["id"], "CVE-2026-1234");
        assert_eq!(
            osv["affected"][0]["ranges"],
            json!([{ "type": "SEMVER", "events": [{ "introduced": "1.2.0" }, { "fixed": "2.4.1" }] }])
        );
        assert_eq!(osv["affected"][0]["package"]["purl"], "pkg:cargo/widget");
    }

    #[test]
    fn explicit_list_without_cve_validates() {
        let (record, osv) = validate_all(&widget(), &sec7());
        assert_eq!(
            record["containers"]["cna"]["affected"][0]["versions"],
            json!([
                { "version": "2.3.0", "status": "affected" },
                { "version": "2.3.1", "status": "affected" },
                { "version": "2.3.2", "status": "unaffected" },
            ])
        );
        assert_eq!(osv["id"], "x_widget-SEC-7");
        assert_eq!(osv["affected"][0]["versions"], json!(["2.3.0", "2.3.1"]));
        assert!(osv["affected"][0].get("ranges").is_none());
        // The repository is the only reference.
        assert_eq!(osv["references"], json!([{ "type": "PACKAGE", "url": "https://github.com/example/widget" }]));
    }

    #[test]
    fn below_and_multiple_fixes_validate() {
        let p = widget();
        let below = Advisory { affected: Some("< 2.4.1"), fixed_in: None, ..sec4() };
        let (record, _) = validate_all(&p, &below);
        assert_eq!(record["containers"]["cna"]["affected"][0]["versions"][0]["version"], "0");
        let lines = Advisory { affected: Some("all"), fixed_in: Some("2.4.1, 3.0.2"), ..sec4() };
        let (record, osv) = validate_all(&p, &lines);
        assert_eq!(record["containers"]["cna"]["affected"][0]["versions"].as_array().unwrap().len(), 2);
        assert_eq!(osv["affected"][0]["ranges"][1]["events"], json!([{ "introduced": "3.0.0" }, { "fixed": "3.0.2" }]));
        let unfixed = Advisory { affected: Some(">= 1.0.0"), fixed_in: None, ..sec7() };
        let (record, osv) = validate_all(&p, &unfixed);
        assert_eq!(record["containers"]["cna"]["affected"][0]["versions"][0]["lessThan"], "*");
        assert_eq!(osv["affected"][0]["ranges"][0]["events"], json!([{ "introduced": "1.0.0" }]));
        let through = Advisory { affected: Some("1.0.0 - 2.4.0"), fixed_in: Some("2.4.1"), ..sec4() };
        let (record, osv) = validate_all(&p, &through);
        let versions = &record["containers"]["cna"]["affected"][0]["versions"];
        assert_eq!(versions[0]["lessThanOrEqual"], "2.4.0");
        assert_eq!(versions[1], json!({ "version": "2.4.1", "status": "unaffected" }));
        assert_eq!(osv["affected"][0]["ranges"][0]["events"][1], json!({ "last_affected": "2.4.0" }));
    }

    #[test]
    fn other_ecosystems_validate_with_their_own_ordering() {
        let pypi = Project {
            vendor: "Example Org".into(),
            product: "Widget Server".into(),
            ecosystem: "PyPI".into(),
            package: "Widget_Server".into(),
            repository: None,
        };
        let a = Advisory {
            affected: Some(">=1.0rc1 <1.4.post2"),
            fixed_in: Some("1.4.post2"),
            references: vec!["https://example.org/security/2026-1".into()],
            ..sec7()
        };
        let (record, osv) = validate_all(&pypi, &a);
        let product = &record["containers"]["cna"]["affected"][0];
        assert_eq!(product["collectionURL"], "https://pypi.python.org");
        assert_eq!(product["versions"][0]["versionType"], "python");
        assert_eq!(osv["id"], "x_Widget-Server-SEC-7");
        assert_eq!(osv["affected"][0]["ranges"][0]["type"], "ECOSYSTEM");
        assert_eq!(osv["affected"][0]["package"]["purl"], "pkg:pypi/widget-server");

        // Debian revisions look like SemVer pre-releases: not SEMVER there.
        let debian = Project { ecosystem: "Debian:12".into(), package: "widget".into(), ..widget() };
        let a = Advisory { affected: Some("< 2.4.1-1"), fixed_in: None, ..sec4() };
        let (record, osv) = validate_all(&debian, &a);
        assert_eq!(osv["affected"][0]["ranges"][0]["type"], "ECOSYSTEM");
        assert_eq!(record["containers"]["cna"]["affected"][0]["versions"][0]["versionType"], "custom");

        let npm = Project { ecosystem: "npm".into(), package: "@example/widget".into(), ..widget() };
        let (_, osv) = validate_all(&npm, &sec4());
        assert_eq!(osv["affected"][0]["package"]["purl"], "pkg:npm/%40example/widget");
    }

    #[test]
    fn refuses_what_cannot_make_a_valid_record() {
        let p = widget();
        let no_text = Advisory { description: " \n ", ..sec4() };
        for result in [cve_cna_container(&p, &no_text), osv(&p, &no_text)] {
            assert!(result.unwrap_err().contains("#advisory"));
        }
        let long = "x".repeat(CVE_TEXT_MAX + 1);
        let too_long = Advisory { description: &long, ..sec4() };
        assert!(cve_cna_container(&p, &too_long).unwrap_err().contains("at most 4096"));
        assert!(osv(&p, &too_long).is_ok(), "OSV details have no limit");

        let no_versions = Advisory { affected: None, ..sec4() };
        assert!(osv(&p, &no_versions).unwrap_err().contains("#affected"));

        let bare = Project { repository: None, ..widget() };
        let no_refs = Advisory { references: vec![], ..sec4() };
        assert!(cve_cna_container(&bare, &no_refs).unwrap_err().contains("no references"));
        assert!(osv(&bare, &no_refs).is_ok(), "OSV needs no reference");

        let bad_url = Advisory { references: vec!["github.com/example/widget".into()], ..sec4() };
        assert!(osv(&p, &bad_url).unwrap_err().contains("not an http(s) URL"));

        let bad_cve = Advisory { cve: Some("CVE-26-1"), ..sec4() };
        assert!(osv(&p, &bad_cve).unwrap_err().contains("not a CVE id"));
        let lower = Advisory { cve: Some("cve-2026-1234"), ..sec4() };
        assert_eq!(osv(&p, &lower).unwrap()["id"], "CVE-2026-1234");

        assert!(cve_record(&p, &sec7(), ORG).unwrap_err().contains("no CVE id"));
        for org in ["not-a-uuid", "00000000-0000-1000-8000-000000000000", "{00000000-0000-4000-8000-000000000000}"] {
            assert!(cve_record(&p, &sec4(), org).unwrap_err().contains("version 4 UUID"), "{org}");
        }

        let typo = Project { ecosystem: "crates-io".into(), ..widget() };
        assert!(osv(&typo, &sec4()).unwrap_err().contains("not an OSV ecosystem"));
        assert!(cve_cna_container(&typo, &sec4()).is_ok(), "a CVE record needs no ecosystem");

        let long_title = "t".repeat(CVE_TITLE_MAX + 1);
        let titled = Advisory { title: &long_title, ..sec4() };
        assert!(cve_cna_container(&p, &titled).unwrap_err().contains("title"));
    }

    #[test]
    fn the_schemas_refuse_what_they_should() {
        // The validators are live: a record missing what the schema requires
        // fails, so the passing tests above mean something.
        let mut record = cve_record(&widget(), &sec4(), ORG).unwrap();
        record["containers"]["cna"].as_object_mut().unwrap().remove("references");
        assert!(!CVE_SCHEMA.is_valid(&record));
        let mut record = cve_record(&widget(), &sec4(), ORG).unwrap();
        record["containers"]["cna"]["datePublic"] = json!("2026-03-10 12:00");
        assert!(!CVE_SCHEMA.is_valid(&record), "patterns are checked");
        let mut osv = osv(&widget(), &sec7()).unwrap();
        osv["id"] = json!("SECMAIL-widget-SEC-7");
        assert!(!OSV_SCHEMA.is_valid(&osv), "an unregistered prefix is refused");
        let mut osv = super::osv(&widget(), &sec7()).unwrap();
        osv["modified"] = json!("2026-03-20T08:00:00+01:00");
        assert!(!OSV_SCHEMA.is_valid(&osv), "timestamps must be UTC with Z");
    }

    #[test]
    fn ecosystem_list_matches_the_osv_schema() {
        let schema = schema("osv_schema.json");
        let names: Vec<&str> =
            schema["$defs"]["ecosystemName"]["enum"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert_eq!(names, OSV_ECOSYSTEMS);
    }

    /// The committed examples are what this module writes now: a change to
    /// the output shows in the diff. `SECMAIL_BLESS=1` rewrites them.
    #[test]
    fn examples_match_the_fixtures() {
        let p = widget();
        let outputs = [
            ("SEC-4.cna.json", cve_cna_container(&p, &sec4()).unwrap()),
            ("SEC-4.cve.json", cve_record(&p, &sec4(), ORG).unwrap()),
            ("SEC-4.osv.json", osv(&p, &sec4()).unwrap()),
            ("SEC-7.osv.json", osv(&p, &sec7()).unwrap()),
        ];
        let bless = std::env::var_os("SECMAIL_BLESS").is_some();
        for (name, value) in outputs {
            let path = format!("{EXAMPLES}{name}");
            let now = pretty(&value);
            if bless {
                std::fs::write(&path, &now).unwrap();
            }
            let committed = std::fs::read_to_string(&path).unwrap_or_default();
            assert_eq!(committed, now, "{name} changed; rerun with SECMAIL_BLESS=1 and review the diff");
        }
    }
}
