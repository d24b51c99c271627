//! `${VAR}` substitution in string values (never in keys). `$${` writes a literal `${`.

/// Replaces `${NAME}` with `lookup(NAME)`; returns the names that had no value.
pub fn substitute(input: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, Vec<String>> {
    let mut out = String::with_capacity(input.len());
    let mut missing = Vec::new();
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos..];
        if let Some(lit) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = lit;
        } else if let Some(body) = after.strip_prefix("${") {
            match body.find('}') {
                Some(end) => {
                    let name = &body[..end];
                    match lookup(name) {
                        Some(v) => out.push_str(&v),
                        None => missing.push(name.to_owned()),
                    }
                    rest = &body[end + 1..];
                }
                None => {
                    out.push_str(after);
                    rest = "";
                }
            }
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    if missing.is_empty() { Ok(out) } else { Err(missing) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "KEY").then(|| "s3cr3t".to_owned())
    }

    #[test]
    fn substitutes_known_variables() {
        assert_eq!(substitute("Bearer ${KEY}", &env), Ok("Bearer s3cr3t".into()));
        assert_eq!(substitute("$5 and $${KEY}", &env), Ok("$5 and ${KEY}".into()));
    }

    #[test]
    fn reports_every_missing_variable() {
        assert_eq!(substitute("${A}-${KEY}-${B}", &env), Err(vec!["A".into(), "B".into()]));
    }
}
