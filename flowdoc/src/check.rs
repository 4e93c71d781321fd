//! The check a result's document must pass before the sink writes it: the shape every
//! `_optical_flow.json` has and the region scripts rely on, read without building the
//! document as a tree.

use serde::Deserialize;

use crate::limits::{implausible_movie, implausible_similarity, MAX_ENTRIES, MAX_FRAMES};

/// The shape every `_optical_flow.json` has and the region scripts rely on; anything
/// else in it is kept as it is.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // read only to check the shape
struct Document {
    contents: Contents,
    movie: Movie,
    frame_stats: Vec<Entry>,
}

/// The movie's facts a reader computes with (the rest is kept as it is).
#[derive(Deserialize)]
#[allow(dead_code)]
struct Movie {
    #[serde(rename = "NumFrames")]
    num_frames: f64,
    #[serde(rename = "Duration", default)]
    duration: Option<f64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
struct Contents {
    frame_stats: FrameStatsContents,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
struct FrameStatsContents {
    optical_flow: serde::de::IgnoredAny,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
struct Entry {
    frame_number: i64,
    optical_flow: Flow,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct Flow {
    similarity: [f64; 4],
    valid: bool,
}

/// Checks that `document` is an optical-flow document: the shape above, no object with
/// a key twice, and nothing a camera or a video cannot be (`crate::limits`): a frame
/// count and rate, at most [`MAX_ENTRIES`] entries, frame numbers of the video, every
/// similarity a camera's. The error says what is wrong.
pub fn check(document: &[u8]) -> Result<(), String> {
    // Readers disagree on which of two equal keys wins (Python's json keeps the last,
    // ours the first), so a document that has any means two things at once.
    serde_json::from_slice::<UniqueKeys>(document).map_err(|e| e.to_string())?;
    let doc: Document = serde_json::from_slice(document).map_err(|e| e.to_string())?;
    if let Some(why) = implausible_movie(doc.movie.num_frames, doc.movie.duration) {
        return Err(format!("movie: {why}"));
    }
    if doc.frame_stats.len() > MAX_ENTRIES {
        return Err(format!(
            "{} entries, more than the {MAX_ENTRIES} a document may hold",
            doc.frame_stats.len()
        ));
    }
    for (i, e) in doc.frame_stats.iter().enumerate() {
        if !(0..=MAX_FRAMES as i64).contains(&e.frame_number) {
            return Err(format!(
                "frameStats[{i}].frameNumber {} is not a frame of a video",
                e.frame_number
            ));
        }
        if let Some(why) = implausible_similarity(&e.optical_flow.similarity) {
            return Err(format!("frameStats[{i}].opticalFlow.similarity: {why}"));
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
