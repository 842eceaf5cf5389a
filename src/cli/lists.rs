//! The listing commands' output: `ls`, `members` and `history`, one line per item.

use std::time::Duration;

/// `history`: one line per version, oldest first.
pub(super) fn print_history(versions: &[peerdoc::api::dto::VersionInfo]) {
    if versions.is_empty() {
        eprintln!(
            "no versions yet: one is recorded after each burst of editing, or now with \
             `peerdoc version DOC [NAME]`"
        );
        return;
    }
    for v in versions {
        let what = match (&v.name, &v.restored_from) {
            (Some(name), _) => format!("\"{name}\""),
            (None, Some(from)) => format!("restore of {from}"),
            (None, None) => "-".into(),
        };
        let changes = match (v.inserted, v.deleted) {
            (Some(i), Some(d)) => format!("+{i} -{d}"),
            _ => "(not synced here yet)".into(),
        };
        let authors: Vec<&str> = v.authors.iter().map(|a| a.label.as_str()).collect();
        let authors = if authors.is_empty() {
            "-".to_string()
        } else {
            authors.join(", ")
        };
        println!(
            "{}  {}  {what}  {authors}  {changes}",
            v.id,
            utc_minute(v.at / 1000)
        );
    }
}

/// Unix seconds as `YYYY-MM-DD HH:MM UTC`.
fn utc_minute(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let (hour, minute) = ((secs % 86_400) / 3600, (secs % 3600) / 60);
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02} UTC")
}

/// `members`: one line per member: what to call it, its role, its peer id.
pub(super) fn print_members(members: &[peerdoc::api::dto::MemberInfo]) {
    let width = members
        .iter()
        .map(|m| m.label.chars().count())
        .max()
        .unwrap_or(0);
    for member in members {
        let you = if member.you { "  (this node)" } else { "" };
        println!(
            "{:<width$}  {:<7}  {}{you}",
            member.label, member.role, member.peer
        );
    }
}

/// `ls`: one line per document (id, name, this node's role, stored size, last change), or a
/// hint when there is none.
pub(super) fn print_docs(docs: &[peerdoc::api::dto::DocInfo], holds_others: bool) {
    if docs.is_empty() && holds_others {
        return;
    }
    if docs.is_empty() {
        eprintln!(
            "no documents yet: create one with `peerdoc new NAME`, or join one with \
             `peerdoc join TICKET`"
        );
        return;
    }
    let width = docs
        .iter()
        .map(|d| d.name.chars().count())
        .max()
        .unwrap_or(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    println!(
        "{:<32}  {:<width$}  {:<7}  {:<5}  {:>9}  CHANGED",
        "ID", "NAME", "ROLE", "KIND", "SIZE"
    );
    for doc in docs {
        let role = match (doc.joining, doc.role.as_str()) {
            (true, _) => "joining",
            (false, "none") => "-",
            (false, role) => role,
        };
        let ago = now.saturating_sub(u64::try_from(doc.changed).unwrap_or(0));
        let changed = if ago < 5 {
            "just now".to_string()
        } else {
            format!("{} ago", indicatif::HumanDuration(Duration::from_secs(ago)))
        };
        let note = match role {
            "joining" => "  (waiting for a member to answer)",
            "removed" => "  (the owner removed this node: it keeps what it had)",
            _ => "",
        };
        println!(
            "{}  {:<width$}  {role:<7}  {:<5}  {:>9}  {changed}{note}",
            doc.id,
            doc.name,
            doc.kind,
            indicatif::HumanBytes(doc.size).to_string(),
        );
    }
}
