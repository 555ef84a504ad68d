//! What SQL a component may send: one statement per call, and none that
//! reaches outside its own database or takes over transaction control.
//! A small lexer is enough: it only has to find statement boundaries and the
//! first keyword of each statement, skipping strings and comments.

/// Statements no component may run, by first keyword.
const DENIED: &[&str] = &[
    "ATTACH",
    "DETACH",
    "PRAGMA",
    "VACUUM",
    "LOAD", // SQLite: other files, engine settings
    "SET",
    "RESET",
    "COPY",
    "GRANT",
    "REVOKE",
    "LISTEN",
    "NOTIFY",
    "UNLISTEN", // PostgreSQL session/role
    "BEGIN",
    "START",
    "COMMIT",
    "END",
    "ROLLBACK",
    "SAVEPOINT",
    "RELEASE",
    "ABORT", // use store.begin/commit
];

/// Splits `sql` into statements (without their `;`), skipping empty ones.
pub fn statements(sql: &str) -> Vec<&str> {
    let bytes = sql.as_bytes();
    let mut out = Vec::new();
    let (mut start, mut i) = (0, 0);
    while i < bytes.len() {
        match bytes[i] {
            quote @ (b'\'' | b'"' | b'`') => {
                i += 1;
                while i < bytes.len() {
                    if bytes[i] == quote {
                        // A doubled quote is an escaped quote inside the literal.
                        if bytes.get(i + 1) == Some(&quote) {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                // Leaves `i` on the comment's last byte.
                i = skip_block_comment(bytes, i).saturating_sub(1);
            }
            b';' => {
                push_statement(&mut out, &sql[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    push_statement(&mut out, &sql[start.min(sql.len())..]);
    out
}

/// The index just past the block comment that starts at `i`, nested as
/// PostgreSQL nests them (`/* /* */ still a comment */`).
fn skip_block_comment(bytes: &[u8], mut i: usize) -> usize {
    let mut depth = 0usize;
    while i < bytes.len() {
        if bytes[i] == b'/' && bytes.get(i + 1) == Some(&b'*') {
            depth += 1;
            i += 2;
        } else if bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/') {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    bytes.len()
}

fn push_statement<'a>(out: &mut Vec<&'a str>, statement: &'a str) {
    if first_keyword(statement).is_some() {
        out.push(statement);
    }
}

/// The first word of a statement, upper-cased, after whitespace, comments and `(`.
fn first_keyword(statement: &str) -> Option<String> {
    let mut rest = statement;
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == '(');
        if let Some(after) = rest.strip_prefix("--") {
            rest = after.split_once('\n').map_or("", |(_, r)| r);
        } else if rest.starts_with("/*") {
            rest = &rest[skip_block_comment(rest.as_bytes(), 0)..];
        } else {
            break;
        }
    }
    let word: String = rest.chars().take_while(|c| c.is_ascii_alphabetic()).collect();
    (!word.is_empty()).then(|| word.to_ascii_uppercase())
}

/// Checks one statement from a component; the error says what is refused.
pub fn check_statement(sql: &str) -> Result<(), String> {
    match statements(sql).as_slice() {
        [] => Err("the SQL text is empty".into()),
        [one] => check_keyword(one),
        _ => Err("one statement per call: the SQL text contains several".into()),
    }
}

/// Checks each statement of a migration file.
pub fn check_script(sql: &str) -> Result<(), String> {
    statements(sql).into_iter().try_for_each(check_keyword)
}

fn check_keyword(statement: &str) -> Result<(), String> {
    match first_keyword(statement) {
        Some(word) if DENIED.contains(&word.as_str()) => Err(format!(
            "`{word}` statements are not allowed: a component reaches only its own tables, and transactions go through store.begin/commit"
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_attach_pragma_and_transaction_control() {
        for sql in [
            "ATTACH DATABASE 'other.sqlite' AS o",
            "  /* hi */ pragma journal_mode = DELETE",
            "-- x\nBEGIN",
            "set role postgres",
            "VACUUM INTO '/tmp/x'",
            // PostgreSQL nests block comments: the first word here is BEGIN.
            "/* /* */ SELECT */ BEGIN",
        ] {
            assert!(check_statement(sql).is_err(), "{sql}");
        }
        assert!(check_statement("/* a /* b */ c */ SELECT 1").is_ok());
    }

    #[test]
    fn refuses_a_second_statement_but_not_semicolons_in_strings() {
        assert!(check_statement("SELECT 1; ATTACH 'x' AS y").is_err());
        assert!(check_statement("SELECT 1;").is_ok());
        assert!(check_statement("INSERT INTO t VALUES ('a;b', \"c;\"\"d\") -- ; trailing").is_ok());
        assert!(check_statement("SELECT 'it''s; fine'").is_ok());
    }

    #[test]
    fn migration_scripts_are_checked_statement_by_statement() {
        assert!(check_script("CREATE TABLE a (x INTEGER);\nCREATE INDEX ai ON a (x);").is_ok());
        assert!(check_script("CREATE TABLE a (x INTEGER);\nATTACH 'b.sqlite' AS b;").is_err());
        assert_eq!(statements("CREATE TABLE a (x TEXT DEFAULT ';');\n\n-- end\n").len(), 1);
    }
}
