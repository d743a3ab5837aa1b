//! Kafka's checkpoint file text (its `CheckpointFile`): a version line, a
//! count line, then one line per entry. The leader epoch cache and the high
//! watermark checkpoint are both kept in it; each says what an entry is.

use std::fmt::{Display, Write};

/// The only version (Kafka's CURRENT_VERSION).
const VERSION: u32 = 0;

/// The text of a checkpoint holding `entries`, one line each.
pub(super) fn encode<E: Display>(entries: impl ExactSizeIterator<Item = E>) -> String {
    let mut out = format!("{VERSION}\n{}\n", entries.len());
    for entry in entries {
        writeln!(out, "{entry}").expect("writing to a String");
    }
    out
}

/// The entry lines of checkpoint text; `None` unless it is one whole: the
/// version, a count, exactly that many lines, then only blank ones.
pub(super) fn entry_lines(text: &str) -> Option<Vec<&str>> {
    let mut lines = text.lines();
    if lines.next()?.trim().parse::<u32>().ok()? != VERSION {
        return None;
    }
    let count: usize = lines.next()?.trim().parse().ok()?;
    let entries: Vec<&str> = lines.by_ref().take(count).collect();
    let whole = entries.len() == count && lines.all(|l| l.trim().is_empty());
    whole.then_some(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_read_back_and_anything_else_is_refused() {
        let text = encode(["a 1", "b 2"].iter());
        assert_eq!(text, "0\n2\na 1\nb 2\n");
        assert_eq!(entry_lines(&text), Some(vec!["a 1", "b 2"]));
        assert_eq!(entry_lines("0\n0\n\n"), Some(vec![]), "blank lines after");
        for bad in [
            "",
            "1\n0\n",
            "0\n",
            "0\nx\n",
            "0\n2\na 1\n",
            "0\n1\na 1\nb 2\n",
        ] {
            assert_eq!(entry_lines(bad), None, "{bad:?}");
        }
    }
}
