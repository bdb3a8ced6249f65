//! "Did you mean …?": the closest of a list of known names to a misspelt
//! one, for error messages that name the candidates.

/// The candidate closest to `word` by Damerau-Levenshtein distance (a
/// transposition counts as one edit), if it is close enough to be a likely
/// misspelling: at most a third of the longer name's length, and at least
/// one edit allowed. Ties go to the first candidate.
pub fn closest<'a, I>(word: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let mut best: Option<(usize, &'a str)> = None;
    for c in candidates {
        if c == word {
            continue;
        }
        let d = strsim::damerau_levenshtein(word, c);
        let longest = word.chars().count().max(c.chars().count());
        if d > (longest / 3).max(1) {
            continue;
        }
        if best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

/// `candidates` joined for a message, with the closest suggested:
/// `known: a, b, c; did you mean b?`.
pub fn candidates_message(word: &str, candidates: &[&str]) -> String {
    let mut m = if candidates.is_empty() {
        "none is known".to_string()
    } else {
        format!("known: {}", candidates.join(", "))
    };
    if let Some(c) = closest(word, candidates.iter().copied()) {
        m.push_str(&format!("; did you mean {c}?"));
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_the_closest_likely_misspelling_only() {
        let known = ["migrate", "resize", "nop", "server_consolidation"];
        assert_eq!(closest("migrat", known), Some("migrate"));
        assert_eq!(closest("mirgate", known), Some("migrate"));
        assert_eq!(
            closest("server_consolidaton", known),
            Some("server_consolidation")
        );
        assert_eq!(closest("np", known), Some("nop"));
        assert_eq!(closest("reboot", known), None);
        assert_eq!(
            candidates_message("resise", &known),
            "known: migrate, resize, nop, server_consolidation; did you mean resize?"
        );
        assert_eq!(candidates_message("x", &[]), "none is known");
    }
}
