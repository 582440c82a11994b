//! Template filters. `time` marks up a time the pages show (`fmt_time`'s
//! `2026-11-23 10:00:05 UTC`) as `<time datetime="…Z" title="… UTC">`, so `static/js/app.js`
//! can show it in the viewer's own zone with UTC on hover; without the script (or where the
//! text is not such a time) the UTC text stays as it is.
//!
//! Templates name it by path (`{{ at|crate::web::filters::time }}`), so no page module has
//! to import it.

// askama's `filter_fn` expands to an `#[inline(always)]` method, which is not ours to change.
#![allow(clippy::inline_always)]

use askama::filters::MaybeSafe;

use crate::domain::time::parse_rfc3339;

/// `<time>` markup around a `fmt_time` text; any other text is escaped as usual.
#[askama::filter_fn]
pub fn time(text: impl ToString, _: &dyn askama::Values) -> askama::Result<MaybeSafe<String>> {
    Ok(markup(&text.to_string()).map_or_else(
        || MaybeSafe::NeedsEscaping(text.to_string()),
        MaybeSafe::Safe,
    ))
}

/// The markup, only for a text that reads back as a time: then it is digits, `-`, `:` and
/// ` UTC`, so nothing in it needs escaping.
fn markup(text: &str) -> Option<String> {
    let bare = text.strip_suffix(" UTC")?;
    let iso = format!("{}Z", bare.replacen(' ', "T", 1));
    parse_rfc3339(&iso)?;
    Some(format!(
        "<time datetime=\"{iso}\" title=\"{text}\">{text}</time>"
    ))
}

#[cfg(test)]
mod tests {
    use super::markup;

    #[test]
    fn a_shown_time_becomes_a_time_element_in_utc() {
        assert_eq!(
            markup("2026-11-23 10:00:05 UTC").as_deref(),
            Some(
                "<time datetime=\"2026-11-23T10:00:05Z\" title=\"2026-11-23 10:00:05 UTC\">2026-11-23 10:00:05 UTC</time>"
            )
        );
    }

    #[test]
    fn anything_else_is_left_to_escaping() {
        for text in [
            "",
            "never",
            "2026-11-23 10:00:05",
            "<b>2026-11-23 10:00:05 UTC",
            "2026-11-23 10:00:05\" onmouseover=\"x UTC",
        ] {
            assert_eq!(markup(text), None, "{text}");
        }
    }
}
