//! Exit reasons and how they classify.
//!
//! OTP decides everything about a child's death from its exit reason: whether a `transient` child is
//! restarted, whether the death is logged, whether a shutdown went as planned. ractor, underneath, only
//! carries a free-form `Option<String>` for stops and an error value for failures and panics. This
//! module gives the reason a type, [`ExitReason`], and a string form that survives ractor's round trip
//! losslessly: `ExitReason::decode(Some(reason.encode()))` gives back the same reason for every value.
//!
//! ```
//! use canopy::ExitReason;
//!
//! let r = ExitReason::ShutdownWith("config reloaded".into());
//! assert!(r.is_normal_class());          // transient children are not restarted after it
//! assert_eq!(ExitReason::decode(Some(r.encode())), r);
//! assert_eq!(ExitReason::decode(None), ExitReason::Normal);
//! assert_eq!(ExitReason::decode(Some("bye".into())), ExitReason::Error("bye".into()));
//! ```

use std::fmt;

/// Why an actor stopped.
///
/// The "normal class" is exactly what OTP treats as a normal exit: [`Normal`](Self::Normal),
/// [`Shutdown`](Self::Shutdown) and [`ShutdownWith`](Self::ShutdownWith). Everything else is abnormal:
/// a `transient` child is restarted after it, and the exit is reported as an error.
///
/// ```
/// use canopy::ExitReason;
/// assert!(!ExitReason::Killed.is_normal_class());
/// assert!(ExitReason::Shutdown.is_normal_class());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ExitReason {
    /// The actor finished its work and stopped without a reason (`normal`).
    Normal,
    /// The actor was told to stop by its supervisor or chose to stop as if it had been (`shutdown`).
    Shutdown,
    /// A shutdown that carries a detail (`{shutdown, Term}`); classified exactly like `Shutdown`.
    ShutdownWith(String),
    /// The actor was killed: its task was aborted without running `post_stop` (`killed`).
    Killed,
    /// The actor failed: a handler returned an error or panicked, or it stopped with a reason of its
    /// own. The text is the error's display form or the panic message.
    Error(String),
}

/// The exact reason ractor gives an actor whose task was killed.
const RACTOR_KILLED: &str = "killed";
/// The reason ractor gives an actor whose task was dropped (its runtime went away).
const RACTOR_CANCELLED: &str = "actor_task_cancelled";
/// The reason ractor gives an actor stopped through `drain`: a graceful stop.
const RACTOR_DRAINED: &str = "Drained";

impl ExitReason {
    /// True for `Normal`, `Shutdown` and `ShutdownWith`: the reasons after which a `transient` child is
    /// not restarted and no error is reported (docs/semantics.md, "Exit reasons").
    ///
    /// ```
    /// # use canopy::ExitReason;
    /// assert!(ExitReason::Normal.is_normal_class());
    /// assert!(!ExitReason::Error("boom".into()).is_normal_class());
    /// ```
    pub fn is_normal_class(&self) -> bool {
        matches!(self, Self::Normal | Self::Shutdown | Self::ShutdownWith(_))
    }

    /// True for `Shutdown` and `ShutdownWith`: the reasons a supervisor exits with when it stops its
    /// subtree on purpose (told to, auto-shutdown, or restart intensity reached).
    ///
    /// ```
    /// # use canopy::ExitReason;
    /// assert!(ExitReason::ShutdownWith("x".into()).is_shutdown());
    /// assert!(!ExitReason::Normal.is_shutdown());
    /// ```
    pub fn is_shutdown(&self) -> bool {
        matches!(self, Self::Shutdown | Self::ShutdownWith(_))
    }

    /// The string to hand to ractor's `stop(Some(..))` so that a supervisor reads this reason back.
    ///
    /// ```
    /// # use canopy::ExitReason;
    /// assert_eq!(ExitReason::Shutdown.encode(), "shutdown");
    /// assert_eq!(ExitReason::Error("normal".into()).encode(), "error:normal");
    /// ```
    pub fn encode(&self) -> String {
        match self {
            Self::Normal => "normal".to_string(),
            Self::Shutdown => "shutdown".to_string(),
            Self::ShutdownWith(detail) => format!("shutdown:{detail}"),
            Self::Killed => RACTOR_KILLED.to_string(),
            // Always prefixed, so that an error whose text happens to read "normal" stays an error.
            Self::Error(text) => format!("error:{text}"),
        }
    }

    /// Reads the reason of a ractor stop (`ActorTerminated`). `None` is a plain `stop(None)`: normal.
    /// A string that none of canopy's encodings produced is the actor's own abnormal reason.
    ///
    /// ```
    /// # use canopy::ExitReason;
    /// assert_eq!(ExitReason::decode(Some("killed".into())), ExitReason::Killed);
    /// assert_eq!(ExitReason::decode(Some("shutdown:bye".into())), ExitReason::ShutdownWith("bye".into()));
    /// ```
    pub fn decode(reason: Option<String>) -> Self {
        Self::decode_str(reason.as_deref())
    }

    /// [`decode`](Self::decode) from a borrowed string: allocates only for a reason that carries
    /// text (`ShutdownWith`, `Error`), so reading a plain `killed` or `shutdown` costs nothing.
    ///
    /// ```
    /// # use canopy::ExitReason;
    /// assert_eq!(ExitReason::decode_str(Some("killed")), ExitReason::Killed);
    /// ```
    pub fn decode_str(reason: Option<&str>) -> Self {
        let Some(text) = reason else {
            return Self::Normal;
        };
        match text {
            "normal" => Self::Normal,
            "shutdown" | RACTOR_DRAINED => Self::Shutdown,
            RACTOR_KILLED | RACTOR_CANCELLED => Self::Killed,
            _ => {
                if let Some(detail) = text.strip_prefix("shutdown:") {
                    Self::ShutdownWith(detail.to_string())
                } else if let Some(err) = text.strip_prefix("error:") {
                    Self::Error(err.to_string())
                } else {
                    Self::Error(text.to_string())
                }
            }
        }
    }

    /// The reason carried by a ractor supervision event about a finished actor, or `None` for events
    /// that are not about an exit (`ActorStarted`, process-group changes).
    ///
    /// ```
    /// # use canopy::ExitReason;
    /// # async fn demo(evt: canopy::ractor::SupervisionEvent) {
    /// if let Some((cell, reason)) = ExitReason::from_event(&evt) {
    ///     println!("{:?} exited: {reason}", cell.get_id());
    /// }
    /// # }
    /// ```
    pub fn from_event(event: &ractor::SupervisionEvent) -> Option<(&ractor::ActorCell, Self)> {
        match event {
            ractor::SupervisionEvent::ActorTerminated(cell, _, reason) => {
                Some((cell, Self::decode_str(reason.as_deref())))
            }
            ractor::SupervisionEvent::ActorFailed(cell, err) => {
                Some((cell, Self::Error(err.to_string())))
            }
            _ => None,
        }
    }
}

impl fmt::Display for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Normal => f.write_str("normal"),
            Self::Shutdown => f.write_str("shutdown"),
            Self::ShutdownWith(detail) => write!(f, "shutdown ({detail})"),
            Self::Killed => f.write_str("killed"),
            Self::Error(text) => write!(f, "error: {text}"),
        }
    }
}

/// Stopping an actor with a typed reason.
///
/// ```no_run
/// use canopy::{ExitReason, StopWith};
/// # fn demo(actor: canopy::ractor::ActorRef<()>) {
/// actor.stop_with(ExitReason::ShutdownWith("maintenance".into()));
/// # }
/// ```
pub trait StopWith {
    /// Stops the actor between two messages with the given reason; its supervisor reads it back exactly.
    fn stop_with(&self, reason: ExitReason);
}

impl StopWith for ractor::ActorCell {
    fn stop_with(&self, reason: ExitReason) {
        self.stop(Some(reason.encode()));
    }
}

impl<M: ractor::Message> StopWith for ractor::ActorRef<M> {
    fn stop_with(&self, reason: ExitReason) {
        self.get_cell().stop_with(reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_round_trips_through_ractor_strings() {
        let reasons = [
            ExitReason::Normal,
            ExitReason::Shutdown,
            ExitReason::ShutdownWith(String::new()),
            ExitReason::ShutdownWith("a:b".into()),
            ExitReason::Killed,
            ExitReason::Error(String::new()),
            ExitReason::Error("normal".into()),
            ExitReason::Error("shutdown:x".into()),
            ExitReason::Error("killed".into()),
        ];
        for r in reasons {
            assert_eq!(ExitReason::decode(Some(r.encode())), r, "{r:?}");
        }
    }

    #[test]
    fn ractor_native_reasons_classify_like_otp() {
        assert_eq!(ExitReason::decode(None), ExitReason::Normal);
        assert_eq!(
            ExitReason::decode(Some("Drained".into())),
            ExitReason::Shutdown
        );
        assert_eq!(
            ExitReason::decode(Some("actor_task_cancelled".into())),
            ExitReason::Killed
        );
        assert!(!ExitReason::decode(Some("oops".into())).is_normal_class());
    }
}
