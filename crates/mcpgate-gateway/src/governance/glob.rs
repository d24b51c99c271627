//! Glob patterns for selectors: `*` matches any run of characters (also none), `?` exactly
//! one; everything else matches itself. Linear-time matching, no backtracking blow-up.

/// Whether `text` matches `pattern` as a whole.
pub fn matches(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    // Where the last `*` was and which text position it stands at.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) && p[pi] != '*' {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn globs_match_whole_names() {
        assert!(matches("a_*", "a_echo"));
        assert!(matches("*echo", "a_echo"));
        assert!(matches("a_?cho", "a_echo"));
        assert!(matches("*", ""));
        assert!(matches("a_*_x*", "a_b_x_c"));
        assert!(!matches("a_*", "b_echo"));
        assert!(!matches("echo", "a_echo"), "no implicit substring match");
        assert!(!matches("a_?", "a_"));
        assert!(matches("a+fixture://a/items/*", "a+fixture://a/items/{item_id}"));
    }
}
