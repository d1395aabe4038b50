//! The keys a settings type reads, asked of its `Deserialize` implementation.

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// The field names of the struct `T` (`#[serde(rename)]`s applied), as its derived
/// `Deserialize` declares them; empty for anything that is not a plain struct.
pub fn fields_of<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(FieldNames {
        fields: &mut fields,
    });
    fields
}

struct FieldNames<'f> {
    fields: &'f mut &'static [&'static str],
}

#[derive(Debug)]
struct Stop;

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("field names taken")
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<M: std::fmt::Display>(_: M) -> Self {
        Stop
    }
}

impl<'de> Deserializer<'de> for FieldNames<'_> {
    type Error = Stop;

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Stop> {
        *self.fields = fields;
        Err(Stop)
    }

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Stop> {
        Err(Stop)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::fields_of;

    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct Two {
        first: u32,
        #[serde(rename = "type")]
        kind: String,
    }

    #[test]
    fn a_structs_fields_are_named() {
        assert_eq!(fields_of::<Two>(), ["first", "type"]);
        assert!(fields_of::<u32>().is_empty());
    }
}
