//! Named pause points, so a test can hold one request at an exact step
//! while another runs, and prove a race instead of hoping to hit it. Built
//! only with the `fault-injection` feature (the integration tests); without
//! it `Hooks::pause` does nothing and the compiler drops the call.

#[cfg(feature = "fault-injection")]
mod armed {
    use std::sync::{Arc, Mutex};

    use tokio::sync::Notify;

    /// One armed point: the request says it arrived, then waits to be let go.
    pub struct Held {
        pub reached: Arc<Notify>,
        pub resume: Arc<Notify>,
    }

    #[derive(Clone, Default)]
    pub struct Hooks {
        points: Arc<Mutex<Vec<(&'static str, Held)>>>,
    }

    impl std::fmt::Debug for Hooks {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("Hooks")
        }
    }

    /// The test's side of an armed point.
    pub struct Pause {
        reached: Arc<Notify>,
        resume: Arc<Notify>,
    }

    impl Pause {
        /// Waits until a request is held at the point.
        pub async fn reached(&self) {
            self.reached.notified().await;
        }

        /// Lets the held request go on (or the next one, if none waits yet).
        pub fn resume(&self) {
            self.resume.notify_one();
        }
    }

    impl Hooks {
        /// Arms `point` for the next request that passes it (once).
        pub fn arm(&self, point: &'static str) -> Pause {
            let (reached, resume) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
            if let Ok(mut points) = self.points.lock() {
                points.push((point, Held { reached: reached.clone(), resume: resume.clone() }));
            }
            Pause { reached, resume }
        }

        /// Holds the caller here if a test armed `point`.
        pub async fn pause(&self, point: &'static str) {
            let held = self.points.lock().ok().and_then(|mut points| {
                let at = points.iter().position(|(name, _)| *name == point)?;
                Some(points.remove(at).1)
            });
            if let Some(held) = held {
                held.reached.notify_one();
                held.resume.notified().await;
            }
        }
    }
}

#[cfg(feature = "fault-injection")]
pub use armed::{Hooks, Pause};

#[cfg(not(feature = "fault-injection"))]
#[derive(Clone, Debug, Default)]
pub struct Hooks;

#[cfg(not(feature = "fault-injection"))]
impl Hooks {
    #[inline(always)]
    pub async fn pause(&self, _point: &'static str) {}
}

/// Where a refresh has read its token's row and not yet written anything.
pub const REFRESH_READ: &str = "refresh:read";
/// Where a log-in has checked the password (and the factor, if any) and
/// not yet stored the log-in.
pub const LOG_IN_VERIFIED: &str = "log-in:verified";
/// Where a step-up (`factors::proof::step_up`) has read its session and
/// not yet checked the factor.
pub const STEP_UP_READY: &str = "step-up:ready";
/// Where the code step has read the account inside its transaction and
/// not yet written anything.
pub const CODE_STEP_READ: &str = "code-step:read";
