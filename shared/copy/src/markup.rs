//! Copy is plain text: what counts as markup, for the check on written text and for refusing
//! product data that holds it.

use std::sync::LazyLock;

use regex::Regex;

/// HTML tags (`<b>`, `</p>`, `<img …>`, an unclosed `<script`), comments, character entities
/// and script URLs. `a < b` and `<3` are not tags: a tag name follows `<` at once.
#[allow(clippy::expect_used)]
pub(crate) static MARKUP: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)</?[a-z][a-z0-9-]*(?:\s[^<>]*)?/?>|</?(?:script|iframe|img|svg|style|object|embed)\b|<!--|&(?:#[0-9]{1,7}|#x[0-9a-f]{1,6}|[a-z][a-z0-9]{1,31});|\b(?:javascript|vbscript)\s*:",
    )
    .expect("markup pattern")
});

/// The first piece of markup in `text`, if any.
pub fn find_markup(text: &str) -> Option<&str> {
    MARKUP.find(text).map(|m| m.as_str())
}

#[cfg(test)]
mod tests {
    use super::find_markup;

    #[test]
    fn tags_entities_and_script_urls_are_markup() {
        for (text, found) in [
            (
                "<img src=x onerror=alert(1)> Mug",
                "<img src=x onerror=alert(1)>",
            ),
            ("<script>alert(1)</script>", "<script>"),
            ("a mug <script src=//x", "<script"),
            ("Bold <b>claims</b>", "<b>"),
            ("line<br/>break", "<br/>"),
            ("hidden <!-- note -->", "<!--"),
            ("Tom &amp; Jerry", "&amp;"),
            ("&#60;script&#62;", "&#60;"),
            ("click JavaScript:alert(1)", "JavaScript:"),
            ("<IMG SRC=x>", "<IMG SRC=x>"),
        ] {
            assert_eq!(find_markup(text), Some(found), "{text}");
        }
    }

    #[test]
    fn plain_text_with_angle_brackets_and_ampersands_is_not() {
        for text in [
            "Fits hoses < 20 mm and > 10 mm",
            "We <3 gardens",
            "R&D tested; Salt & Pepper",
            "Technical data: 2 kg",
            "Ratio 1<2 and 3>2",
            "保温杯 <500ml>",
        ] {
            assert_eq!(find_markup(text), None, "{text}");
        }
    }
}
