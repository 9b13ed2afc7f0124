//! The `RESULT` line: a flat JSON object, written by hand (no serde for six kinds of
//! value).

use std::fmt::{self, Write};

/// One JSON value of a result field.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// An unsigned integer.
    U64(u64),
    /// A float, written with three decimals; NaN and infinities become `null`.
    F64(f64),
    /// `true` or `false`.
    Bool(bool),
    /// A string, escaped.
    Str(String),
    /// `null`.
    Null,
}

impl From<u64> for Value {
    fn from(v: u64) -> Self {
        Value::U64(v)
    }
}

impl From<u32> for Value {
    fn from(v: u32) -> Self {
        Value::U64(u64::from(v))
    }
}

impl From<usize> for Value {
    fn from(v: usize) -> Self {
        Value::U64(v as u64)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::F64(v)
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Str(v.to_owned())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Str(v)
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// A flat JSON object whose fields keep the order they were added in.
///
/// # Examples
///
/// ```
/// use loadgen::json::Object;
///
/// let mut o = Object::new();
/// o.field("mode", "bulk").field("bytes", 3u64).field("mb_per_s", 1.5);
/// assert_eq!(o.to_string(), r#"{"mode":"bulk","bytes":3,"mb_per_s":1.500}"#);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Object {
    fields: Vec<(&'static str, Value)>,
}

impl Object {
    /// An empty object.
    pub fn new() -> Self {
        Object::default()
    }

    /// Appends a field.
    pub fn field(&mut self, key: &'static str, value: impl Into<Value>) -> &mut Self {
        self.fields.push((key, value.into()));
        self
    }

    /// The value of the first field named `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.fields.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }
}

impl fmt::Display for Object {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_char('{')?;
        for (i, (key, value)) in self.fields.iter().enumerate() {
            if i > 0 {
                f.write_char(',')?;
            }
            write_str(f, key)?;
            f.write_char(':')?;
            match value {
                Value::U64(v) => write!(f, "{v}")?,
                Value::F64(v) if v.is_finite() => write!(f, "{v:.3}")?,
                Value::F64(_) | Value::Null => f.write_str("null")?,
                Value::Bool(v) => write!(f, "{v}")?,
                Value::Str(s) => write_str(f, s)?,
            }
        }
        f.write_char('}')
    }
}

fn write_str(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            c if u32::from(c) < 0x20 => write!(f, "\\u{:04x}", u32::from(c))?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_kind_in_order() {
        let mut o = Object::new();
        o.field("a", 1u64)
            .field("b", 2.0)
            .field("c", true)
            .field("d", "x")
            .field("e", None::<u64>)
            .field("f", f64::NAN)
            .field("g", Some(7usize));
        assert_eq!(
            o.to_string(),
            r#"{"a":1,"b":2.000,"c":true,"d":"x","e":null,"f":null,"g":7}"#
        );
    }

    #[test]
    fn escapes_strings() {
        let mut o = Object::new();
        o.field("error", "say \"hi\"\\\n\u{1}é");
        assert_eq!(o.to_string(), r#"{"error":"say \"hi\"\\\n\u0001é"}"#);
    }

    #[test]
    fn empty_object() {
        assert_eq!(Object::new().to_string(), "{}");
    }

    #[test]
    fn get_finds_a_field() {
        let mut o = Object::new();
        o.field("ok", false);
        assert_eq!(o.get("ok"), Some(&Value::Bool(false)));
        assert_eq!(o.get("nope"), None);
    }
}
