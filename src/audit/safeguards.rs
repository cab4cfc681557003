//! Section 6 of the report: every weakened safeguard with what it opens, in both formats.

use super::lang::Text;
use super::report::Report;

pub(super) fn markdown(m: &mut String, r: &Report, t: &Text) {
    use super::markdown::{code, head, row, text};
    m.push_str(&format!("## 6. {}\n\n{}\n\n", text(t.s6), text(t.s6_intro)));
    if r.weakened.is_empty() {
        m.push_str(&format!("{}\n\n", text(t.s6_none)));
        return;
    }
    m.push_str(&head(&[t.setting, t.value, t.opens]));
    for w in &r.weakened {
        let opens = if t.code == "ja" {
            &w.opens_ja
        } else {
            &w.opens
        };
        m.push_str(&row(&[code(w.key), code(&w.value), text(opens)]));
    }
    m.push('\n');
}

pub(super) fn html(h: &mut String, r: &Report, t: &Text) {
    use super::html::{code, esc};
    h.push_str(&format!(
        "<section id=\"weakened\">\n<h2>6. {}</h2>\n<p>{}</p>\n",
        esc(t.s6),
        esc(t.s6_intro)
    ));
    if r.weakened.is_empty() {
        h.push_str(&format!("<p>{}</p>\n</section>\n", esc(t.s6_none)));
        return;
    }
    h.push_str(&format!(
        "<table>\n<thead><tr><th>{}</th><th>{}</th><th>{}</th></tr></thead>\n<tbody>\n",
        esc(t.setting),
        esc(t.value),
        esc(t.opens)
    ));
    for w in &r.weakened {
        let opens = if t.code == "ja" {
            &w.opens_ja
        } else {
            &w.opens
        };
        h.push_str(&format!(
            "<tr class=\"warn\"><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            code(w.key),
            code(&w.value),
            esc(opens)
        ));
    }
    h.push_str("</tbody>\n</table>\n</section>\n");
}
