//! The check a result's document must pass before the sink writes it: the shape every
//! `_optical_flow.json` has and the region scripts rely on, judged on the one reading
//! (`crate::read`), never a tree.

use serde::Deserialize;

use crate::error::{DocError, EntryProblem, MovieError};
use crate::limits::{implausible_movie, implausible_similarity, MAX_FRAMES};
use crate::read::{read, Reading, Spelling};

/// Checks that `document` is an optical-flow document (see [`check_reading`]) with no
/// object holding a key twice, and returns its reading for the caller to use.
pub fn check(document: &[u8]) -> Result<Reading<'_>, DocError> {
    // Readers disagree on which of two equal keys wins (Python's json keeps the last,
    // ours the first), so a document that has any means two things at once.
    serde_json::from_slice::<UniqueKeys>(document)
        .map_err(|e| DocError::Unreadable(e.to_string()))?;
    let reading = read(document)?;
    check_reading(&reading)?;
    Ok(reading)
}

/// Checks that a reading is of an optical-flow document: `contents.frameStats.opticalFlow`
/// declared, a `movie` with a frame count and rate a video can have, `frameStats` (at
/// most `limits::MAX_ENTRIES`) whose every entry has a frame number of a video and an
/// `opticalFlow` with a camera's `similarity` and a boolean `valid`. The error says what
/// is wrong, and where.
pub fn check_reading(doc: &Reading) -> Result<(), DocError> {
    if !doc.declares_flow {
        return Err(DocError::NotDeclared);
    }
    let movie = doc.movie_facts()?;
    if let Some(why) = implausible_movie(movie.num_frames, movie.duration) {
        return Err(MovieError::Implausible(why).into());
    }
    if doc.spelling != Some(Spelling::V11) {
        return Err(DocError::NoFrameStats);
    }
    for (i, e) in doc.entries.iter().enumerate() {
        let at = |problem| DocError::Entry { index: i, problem };
        match e.frame {
            Some(f) if (0..=MAX_FRAMES as i64).contains(&f) => {}
            Some(f) => return Err(at(EntryProblem::NotAFrame(f))),
            None => return Err(at(EntryProblem::NoFrame)),
        }
        if !e.nested {
            return Err(at(EntryProblem::NoFlow));
        }
        let Some(similarity) = e.similarity else {
            return Err(at(EntryProblem::NoSimilarity));
        };
        if e.valid.is_none() {
            return Err(at(EntryProblem::NoValid));
        }
        if let Some(why) = implausible_similarity(&similarity) {
            return Err(at(EntryProblem::Implausible(why)));
        }
    }
    Ok(())
}

/// Any JSON value in which no object has a key twice; walked, never kept.
struct UniqueKeys;

impl<'de> Deserialize<'de> for UniqueKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UniqueKeysVisitor)
    }
}

struct UniqueKeysVisitor;

impl<'de> serde::de::Visitor<'de> for UniqueKeysVisitor {
    type Value = UniqueKeys;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_i64<E>(self, _: i64) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_u64<E>(self, _: u64) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_f64<E>(self, _: f64) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_str<E>(self, _: &str) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_unit<E>(self) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<UniqueKeys, A::Error> {
        while seq.next_element::<UniqueKeys>()?.is_some() {}
        Ok(UniqueKeys)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<UniqueKeys, A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if seen.contains(&key) {
                return Err(serde::de::Error::custom(format!(
                    "the key {:?} appears twice in one object",
                    shown_key(&key)
                )));
            }
            map.next_value::<UniqueKeys>()?;
            seen.insert(key);
        }
        Ok(UniqueKeys)
    }
}

/// A key as shown in a refusal: at most 64 characters.
fn shown_key(key: &str) -> String {
    key.chars().take(64).collect()
}
