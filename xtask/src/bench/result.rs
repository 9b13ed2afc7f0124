//! Reading a `RESULT {json}` line, as `loadgen` and `timers-bench` print it: one flat
//! JSON object of numbers, booleans, strings and nulls (bench/README.md). A few dozen
//! lines of parsing keep xtask free of dependencies.

use std::fmt;

/// One value of a result field.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Number(f64),
    Bool(bool),
    Str(String),
    Null,
}

/// The fields of a `RESULT` line, in order.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Fields(Vec<(String, Value)>);

/// Why a `RESULT` line could not be read.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ParseError(pub(crate) String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad RESULT line: {}", self.0)
    }
}

impl Fields {
    /// The fields of the first line of `output` that starts with `RESULT `.
    pub(crate) fn from_output(output: &str) -> Result<Fields, ParseError> {
        let line = output
            .lines()
            .find_map(|l| l.trim_end().strip_prefix("RESULT "))
            .ok_or_else(|| ParseError("no RESULT line in the output".into()))?;
        Fields::parse(line)
    }

    /// Parses one flat JSON object.
    pub(crate) fn parse(json: &str) -> Result<Fields, ParseError> {
        let mut p = Parser {
            s: json.trim().as_bytes(),
            at: 0,
        };
        p.expect(b'{')?;
        let mut fields = Vec::new();
        p.skip_ws();
        if p.peek() == Some(b'}') {
            p.at += 1;
        } else {
            loop {
                p.skip_ws();
                let key = p.string()?;
                p.skip_ws();
                p.expect(b':')?;
                p.skip_ws();
                let value = p.value()?;
                fields.push((key, value));
                p.skip_ws();
                match p.next() {
                    Some(b',') => continue,
                    Some(b'}') => break,
                    _ => return Err(p.error("expected , or }")),
                }
            }
        }
        p.skip_ws();
        if p.at != p.s.len() {
            return Err(p.error("text after the object"));
        }
        Ok(Fields(fields))
    }

    /// The value of `key`, if present.
    pub(crate) fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The number in `key`; `None` when absent, null or not a number.
    pub(crate) fn num(&self, key: &str) -> Option<f64> {
        match self.get(key)? {
            Value::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// The boolean in `key`.
    pub(crate) fn bool(&self, key: &str) -> Option<bool> {
        match self.get(key)? {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The string in `key`.
    pub(crate) fn str(&self, key: &str) -> Option<&str> {
        match self.get(key)? {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

struct Parser<'a> {
    s: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn error(&self, what: &str) -> ParseError {
        ParseError(format!("{what} at byte {}", self.at))
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.at += 1;
        Some(c)
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            self.at += 1;
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), ParseError> {
        if self.next() == Some(c) {
            Ok(())
        } else {
            Err(self.error(&format!("expected {}", c as char)))
        }
    }

    fn string(&mut self) -> Result<String, ParseError> {
        self.expect(b'"')?;
        let mut out = Vec::new();
        loop {
            match self
                .next()
                .ok_or_else(|| self.error("unterminated string"))?
            {
                b'"' => break,
                b'\\' => match self.next() {
                    Some(b'"') => out.push(b'"'),
                    Some(b'\\') => out.push(b'\\'),
                    Some(b'/') => out.push(b'/'),
                    Some(b'n') => out.push(b'\n'),
                    Some(b't') => out.push(b'\t'),
                    Some(b'r') => out.push(b'\r'),
                    Some(b'b') => out.push(0x08),
                    Some(b'f') => out.push(0x0c),
                    Some(b'u') => {
                        let hex = self
                            .s
                            .get(self.at..self.at + 4)
                            .and_then(|h| std::str::from_utf8(h).ok())
                            .and_then(|h| u32::from_str_radix(h, 16).ok())
                            .ok_or_else(|| self.error("bad \\u escape"))?;
                        self.at += 4;
                        let c = char::from_u32(hex).unwrap_or('\u{fffd}');
                        out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                    }
                    _ => return Err(self.error("bad escape")),
                },
                c => out.push(c),
            }
        }
        String::from_utf8(out).map_err(|_| self.error("string is not UTF-8"))
    }

    fn value(&mut self) -> Result<Value, ParseError> {
        match self.peek() {
            Some(b'"') => Ok(Value::Str(self.string()?)),
            Some(b't') => self.word("true", Value::Bool(true)),
            Some(b'f') => self.word("false", Value::Bool(false)),
            Some(b'n') => self.word("null", Value::Null),
            Some(c) if c == b'-' || c.is_ascii_digit() => {
                let start = self.at;
                while self
                    .peek()
                    .is_some_and(|c| c.is_ascii_digit() || b"+-.eE".contains(&c))
                {
                    self.at += 1;
                }
                let text = std::str::from_utf8(&self.s[start..self.at]).expect("ASCII");
                text.parse()
                    .map(Value::Number)
                    .map_err(|_| self.error("bad number"))
            }
            _ => Err(self.error("expected a value")),
        }
    }

    fn word(&mut self, word: &str, value: Value) -> Result<Value, ParseError> {
        if self.s[self.at..].starts_with(word.as_bytes()) {
            self.at += word.len();
            Ok(value)
        } else {
            Err(self.error("expected a value"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_result_line_among_others() {
        let out = "idle: 10 connections open\nRESULT {\"mode\":\"echo\",\"ok\":true,\"problem\":null,\"requests_per_s\":291234.500,\"p99_us\":230}\n";
        let f = Fields::from_output(out).unwrap();
        assert_eq!(f.str("mode"), Some("echo"));
        assert_eq!(f.bool("ok"), Some(true));
        assert_eq!(f.get("problem"), Some(&Value::Null));
        assert_eq!(f.num("requests_per_s"), Some(291234.5));
        assert_eq!(f.num("p99_us"), Some(230.0));
        assert_eq!(f.num("missing"), None);
        assert_eq!(f.num("mode"), None, "a string is not a number");
    }

    #[test]
    fn reads_strings_with_escapes_and_odd_numbers() {
        let f = Fields::parse(
            r#"{ "problem" : "2 downloads \"failed\"\n\u00e9", "x": -1.5e3, "neg":-2 }"#,
        )
        .unwrap();
        assert_eq!(f.str("problem"), Some("2 downloads \"failed\"\né"));
        assert_eq!(f.num("x"), Some(-1500.0));
        assert_eq!(f.num("neg"), Some(-2.0));
    }

    #[test]
    fn reads_timers_bench_output() {
        let f = Fields::from_output(
            "RESULT {\"count\":10000,\"schedule_ns\":41.2,\"cancel_ns\":20.0,\"fire_ns\":55.9,\"bytes_per_pending_call\":48.0,\"structure_bytes_per_call\":40}",
        )
        .unwrap();
        assert_eq!(f.num("schedule_ns"), Some(41.2));
        assert_eq!(f.num("structure_bytes_per_call"), Some(40.0));
    }

    #[test]
    fn empty_object_is_fine() {
        assert_eq!(Fields::parse("{}").unwrap(), Fields::default());
    }

    #[test]
    fn rejects_what_is_not_a_flat_object() {
        assert!(Fields::from_output("no result here").is_err());
        assert!(Fields::parse(r#"{"a":1"#).is_err());
        assert!(Fields::parse(r#"{"a":[1]}"#).is_err());
        assert!(Fields::parse(r#"{"a":1} trailing"#).is_err());
        assert!(Fields::parse(r#"{"a":tru}"#).is_err());
        assert!(Fields::parse(r#"{"a":"open}"#).is_err());
    }
}
