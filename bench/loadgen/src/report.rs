//! What a run prints: one `RESULT {json}` line for the harness.

use crate::json::Object;

/// The outcome of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The mode's name (`bulk`, `poems`, ...).
    pub mode: &'static str,
    /// Whether everything asked for happened, verified, in time.
    pub ok: bool,
    /// When not `ok`: why, in one line.
    pub problem: Option<String>,
    /// The mode's figures, in the order they were added.
    pub fields: Object,
}

impl Report {
    /// A report that is `ok` unless `problem` says otherwise.
    pub fn new(mode: &'static str, problem: Option<String>, fields: Object) -> Self {
        Report {
            mode,
            ok: problem.is_none(),
            problem,
            fields,
        }
    }

    /// The line to print: `RESULT ` and a JSON object with `mode`, `ok`, `problem`
    /// first, then the mode's fields.
    ///
    /// # Examples
    ///
    /// ```
    /// use loadgen::json::Object;
    /// use loadgen::Report;
    ///
    /// let mut fields = Object::new();
    /// fields.field("bytes", 10u64);
    /// let report = Report::new("bulk", None, fields);
    /// assert_eq!(
    ///     report.result_line(),
    ///     r#"RESULT {"mode":"bulk","ok":true,"problem":null,"bytes":10}"#
    /// );
    /// ```
    pub fn result_line(&self) -> String {
        let head = {
            let mut o = Object::new();
            o.field("mode", self.mode)
                .field("ok", self.ok)
                .field("problem", self.problem.clone());
            o.to_string()
        };
        let tail = self.fields.to_string();
        // Splice the two flat objects: `{head` + `,` + `tail}`.
        let head = head.strip_suffix('}').unwrap_or(&head);
        match tail.strip_prefix('{') {
            Some("}") | None => format!("RESULT {head}}}"),
            Some(rest) => format!("RESULT {head},{rest}"),
        }
    }
}

/// Joins the problems found, `None` if there were none.
pub(crate) fn problems(list: Vec<String>) -> Option<String> {
    if list.is_empty() {
        None
    } else {
        Some(list.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_run_says_why() {
        let mut fields = Object::new();
        fields.field("failures", 2u64).field("rate", 1.25);
        let r = Report::new("poems", Some("2 downloads failed".into()), fields);
        assert!(!r.ok);
        assert_eq!(
            r.result_line(),
            r#"RESULT {"mode":"poems","ok":false,"problem":"2 downloads failed","failures":2,"rate":1.250}"#
        );
    }

    #[test]
    fn no_fields() {
        let r = Report::new("idle", None, Object::new());
        assert_eq!(
            r.result_line(),
            r#"RESULT {"mode":"idle","ok":true,"problem":null}"#
        );
    }

    #[test]
    fn problems_join() {
        assert_eq!(problems(vec![]), None);
        assert_eq!(
            problems(vec!["a".into(), "b".into()]),
            Some("a; b".to_owned())
        );
    }
}
