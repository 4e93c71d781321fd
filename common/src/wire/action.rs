//! What was done with a job or result that failed, as a failure record says it: one
//! value in the code, the same text on the wire as ever ("buried", "superseded",
//! "released; retry in 60s"), so records written by older builds and read by any
//! beanstalk CLI mean what they meant.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What was done with what failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", from = "String")]
pub enum Action {
    /// Released, to be tried again after this many seconds.
    Released {
        /// The delay before the next attempt.
        retry_in_s: u64,
    },
    /// Buried: retrying cannot help; an operator decides.
    Buried,
    /// A sink's record of a failure that a later result for the same video answered.
    Superseded,
    /// Text this build does not know (a newer build's, or hostile), kept as it came.
    Other(String),
}

impl Action {
    /// Released, to be tried again after `delay` (whole seconds).
    pub fn released(delay: Duration) -> Action {
        Action::Released {
            retry_in_s: delay.as_secs(),
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Released { retry_in_s } => write!(f, "released; retry in {retry_in_s}s"),
            Action::Buried => f.write_str("buried"),
            Action::Superseded => f.write_str("superseded"),
            Action::Other(text) => f.write_str(text),
        }
    }
}

impl From<Action> for String {
    fn from(action: Action) -> String {
        action.to_string()
    }
}

impl From<String> for Action {
    fn from(text: String) -> Action {
        let released = text
            .strip_prefix("released; retry in ")
            .and_then(|s| s.strip_suffix('s'))
            .and_then(|s| s.parse().ok());
        match (text.as_str(), released) {
            (_, Some(retry_in_s)) => Action::Released { retry_in_s },
            ("buried", _) => Action::Buried,
            ("superseded", _) => Action::Superseded,
            _ => Action::Other(text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_reads_back_from_the_text_it_writes() {
        for action in [
            Action::released(Duration::from_secs(60)),
            Action::Buried,
            Action::Superseded,
            Action::Other("released".into()),
        ] {
            let json = serde_json::to_string(&action).unwrap();
            assert_eq!(serde_json::from_str::<Action>(&json).unwrap(), action);
        }
        assert_eq!(
            serde_json::to_string(&Action::released(Duration::from_secs(90))).unwrap(),
            r#""released; retry in 90s""#
        );
        let odd: Action = serde_json::from_str(r#""released; retry in soon""#).unwrap();
        assert_eq!(odd, Action::Other("released; retry in soon".into()));
    }
}
