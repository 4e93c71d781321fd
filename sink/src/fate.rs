//! What becomes of a result, decided in one place: what happened to it (`Event`) gives
//! its fate (`Fate`): deleted once committed, released to come back when the checkout
//! as a whole failed, buried with the reason when it must never be written. Pure, like
//! the filter's `outcome::decide`; `Sink::settle` applies it.

/// After a failed commit, its results come back this many seconds later.
pub const COMMIT_RETRY_SECS: u32 = 10;

/// What happened to a result, as far as it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Its signature was refused.
    SignatureRefused(String),
    /// Its body was refused (`incoming`: malformed, too large, not an optical-flow
    /// document).
    BodyRefused(String),
    /// Its output path is refused by the path policy.
    HostilePath(String),
    /// Its file could not be written, though the checkout can be.
    Unwritable(String),
    /// git refused its file, or did not take it into the commit.
    GitRefused(String),
    /// Its commit failed and the checkout cannot be written: no result is to blame.
    CheckoutFault,
    /// It is in a commit.
    Committed,
}

/// What is done with a result in the results tube.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// Deleted, with the job it answers.
    Delete,
    /// Released, to come back after this many seconds.
    Release {
        /// The delay.
        delay_secs: u32,
    },
    /// Buried, with a failure record saying why.
    Bury {
        /// The record's error.
        error: String,
    },
}

/// The fate of a result after `event`.
pub fn decide(event: Event) -> Fate {
    match event {
        Event::Committed => Fate::Delete,
        Event::CheckoutFault => Fate::Release {
            delay_secs: COMMIT_RETRY_SECS,
        },
        Event::SignatureRefused(why) => Fate::Bury {
            error: format!("result refused: {why}"),
        },
        Event::HostilePath(why) => Fate::Bury {
            error: format!("not written: {why}"),
        },
        Event::BodyRefused(why) | Event::Unwritable(why) | Event::GitRefused(why) => {
            Fate::Bury { error: why }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_committed_result_is_deleted_and_only_a_checkout_fault_releases() {
        assert_eq!(decide(Event::Committed), Fate::Delete);
        assert_eq!(
            decide(Event::CheckoutFault),
            Fate::Release {
                delay_secs: COMMIT_RETRY_SECS
            }
        );
        for event in [
            Event::SignatureRefused("unknown key".into()),
            Event::BodyRefused("malformed result: x".into()),
            Event::HostilePath("refusing output path".into()),
            Event::Unwritable("cannot write".into()),
            Event::GitRefused("git refused".into()),
        ] {
            let fate = decide(event.clone());
            assert!(
                matches!(&fate, Fate::Bury { error } if !error.is_empty()),
                "{event:?}: {fate:?}"
            );
        }
        assert_eq!(
            decide(Event::SignatureRefused("unknown key".into())),
            Fate::Bury {
                error: "result refused: unknown key".into()
            }
        );
    }
}
