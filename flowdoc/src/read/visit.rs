//! The serde visitors of the one reader: the document's map, `contents` searched for the
//! flow's declaration, the entries streamed into a vector (bounded), each entry's and
//! `opticalFlow`'s fields read into small typed values, and `center`'s width.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

use super::{Entry, Reading, Spelling};
use crate::limits::MAX_ENTRIES;

/// An object's key, borrowed from the document when it holds no escapes (most do): no
/// allocation per key per entry.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Key<'de>, D::Error> {
        d.deserialize_str(KeyVisitor)
    }
}

impl Key<'_> {
    fn as_str(&self) -> &str {
        &self.0
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(v.to_owned())))
    }
}

/// A visitor's answer for every scalar (a value that is not an array or object).
macro_rules! scalars_are {
    ($answer:expr) => {
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok($answer)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok($answer)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            Ok($answer)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok($answer)
        }
        fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
            Ok($answer)
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok($answer)
        }
    };
}

pub(super) struct DocumentVisitor;

impl<'de> Visitor<'de> for DocumentVisitor {
    type Value = Reading<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an _optical_flow.json object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Reading<'de>, A::Error> {
        let mut reading = Reading {
            declares_flow: false,
            movie: None,
            spelling: None,
            entries: Vec::new(),
            flow_keys: BTreeSet::new(),
        };
        while let Some(key) = map.next_key::<Key>()? {
            let spelling = match key.as_str() {
                "contents" => {
                    reading.declares_flow =
                        map.next_value_seed(Has(&["frameStats", "opticalFlow"]))?;
                    continue;
                }
                "movie" => {
                    reading.movie = Some(map.next_value()?);
                    continue;
                }
                "frameStats" => Spelling::V11,
                "frame_stats" => Spelling::V10,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            reading.spelling = Some(spelling);
            reading.entries.clear();
            map.next_value_seed(Entries {
                entries: &mut reading.entries,
                keys: &mut reading.flow_keys,
            })?;
        }
        Ok(reading)
    }
}

/// Whether a value has the path of keys given (each level an object).
struct Has(&'static [&'static str]);

impl<'de> DeserializeSeed<'de> for Has {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        if self.0.is_empty() {
            IgnoredAny::deserialize(d)?;
            return Ok(true);
        }
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Has {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let mut found = false;
        while let Some(key) = map.next_key::<Key>()? {
            if key.as_str() == self.0[0] {
                found |= map.next_value_seed(Has(&self.0[1..]))?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(false)
    }

    scalars_are!(false);
}

/// The entries array, each entry appended as it is read.
struct Entries<'r> {
    entries: &'r mut Vec<Entry>,
    keys: &'r mut BTreeSet<String>,
}

impl<'de> DeserializeSeed<'de> for Entries<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Entries<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of entries")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(entry) = seq.next_element_seed(EntrySeed(self.keys))? {
            if self.entries.len() == MAX_ENTRIES {
                return Err(de::Error::custom(format!(
                    "more than the {MAX_ENTRIES} entries a document may hold"
                )));
            }
            self.entries.push(entry);
        }
        Ok(())
    }
}

/// One entry; anything but an object reads as an entry with nothing in it.
struct EntrySeed<'r>(&'r mut BTreeSet<String>);

impl<'de> DeserializeSeed<'de> for EntrySeed<'_> {
    type Value = Entry;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Entry, D::Error> {
        d.deserialize_any(self)
    }
}

/// The flow's fields as found in one object (an `opticalFlow`, or a 1.0 entry itself).
#[derive(Default)]
struct Fields {
    similarity: Option<[f64; 4]>,
    valid: Option<bool>,
    center: Option<usize>,
}

impl Fields {
    /// Reads `key`'s value into its field; false when `key` is not a flow field.
    fn take<'de, A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<bool, A::Error> {
        match key {
            "similarity" => self.similarity = four_numbers(&map.next_value::<Value>()?),
            "valid" => self.valid = map.next_value::<Value>()?.as_bool(),
            "center" => self.center = Some(map.next_value::<Width>()?.0),
            _ => return Ok(false),
        }
        Ok(true)
    }
}

fn four_numbers(v: &Value) -> Option<[f64; 4]> {
    match v.as_array()?.as_slice() {
        [a, b, c, d] => Some([a.as_f64()?, b.as_f64()?, c.as_f64()?, d.as_f64()?]),
        _ => None,
    }
}

impl<'de> Visitor<'de> for EntrySeed<'_> {
    type Value = Entry;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an entry")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entry, A::Error> {
        let (mut frame, mut nested, mut flat) = (None, None, Fields::default());
        while let Some(key) = map.next_key::<Key>()? {
            match key.as_str() {
                "frameNumber" | "frame_number" => frame = map.next_value::<Value>()?.as_i64(),
                "opticalFlow" => nested = Some(map.next_value_seed(FlowSeed(&mut *self.0))?),
                other => {
                    if !flat.take(other, &mut map)? {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
        }
        let (is_nested, fields) = match nested {
            Some(Some(fields)) => (true, fields),
            Some(None) => (false, Fields::default()),
            None => (false, flat),
        };
        Ok(Entry {
            frame,
            nested: is_nested,
            similarity: fields.similarity,
            valid: fields.valid,
            center: fields.center,
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Entry, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Entry::default())
    }
    scalars_are!(Entry::default());
}

/// An entry's `opticalFlow`: its fields, its other keys into the document's set;
/// `None` when it is not an object.
struct FlowSeed<'r>(&'r mut BTreeSet<String>);

impl<'de> DeserializeSeed<'de> for FlowSeed<'_> {
    type Value = Option<Fields>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<Fields>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for FlowSeed<'_> {
    type Value = Option<Fields>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an opticalFlow object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<Fields>, A::Error> {
        let mut fields = Fields::default();
        while let Some(key) = map.next_key::<Key>()? {
            let key = key.as_str();
            if key != "center" && key != "similarity" && !self.0.contains(key) {
                self.0.insert(key.to_owned());
            }
            if !fields.take(key, &mut map)? {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(Some(fields))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Option<Fields>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    scalars_are!(None);
}

/// The number of columns pandas spreads a value over: its elements, its keys, or one.
struct Width(usize);

impl<'de> Deserialize<'de> for Width {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Width, D::Error> {
        d.deserialize_any(WidthVisitor)
    }
}

struct WidthVisitor;

impl<'de> Visitor<'de> for WidthVisitor {
    type Value = Width;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Width, A::Error> {
        let mut n = 0;
        while seq.next_element::<IgnoredAny>()?.is_some() {
            n += 1;
        }
        Ok(Width(n))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Width, A::Error> {
        let mut keys = BTreeSet::new();
        while let Some(k) = map.next_key::<Key>()? {
            map.next_value::<IgnoredAny>()?;
            keys.insert(k.as_str().to_owned());
        }
        Ok(Width(keys.len()))
    }
    scalars_are!(Width(1));
}
