//! The tracing output of a test, captured: each event's message and its fields as text.
#![allow(dead_code)]

use std::sync::Arc;

use parking_lot::Mutex;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

/// One tracing event: its message and its fields as text.
#[derive(Debug, Clone, Default)]
pub struct Logged {
    pub message: String,
    pub fields: Vec<(String, String)>,
}

impl Logged {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Clone, Default)]
pub struct Capture(Arc<Mutex<Vec<Logged>>>);

impl Capture {
    /// Captures every event of the calling thread until the guard is dropped (the tests run on a
    /// current-thread runtime, so the actors' events are on this thread too).
    pub fn install() -> (Capture, tracing::subscriber::DefaultGuard) {
        let capture = Capture::default();
        let subscriber = tracing_subscriber::registry().with(capture.clone());
        let guard = tracing::subscriber::set_default(subscriber);
        (capture, guard)
    }

    pub fn events(&self) -> Vec<Logged> {
        self.0.lock().clone()
    }

    /// Forgets what was captured so far.
    pub fn clear(&self) {
        self.0.lock().clear();
    }

    /// The events with this message.
    pub fn with_message(&self, message: &str) -> Vec<Logged> {
        self.0
            .lock()
            .iter()
            .filter(|e| e.message == message)
            .cloned()
            .collect()
    }

    /// The events with this message about this child (by `child` or `path`).
    pub fn about(&self, message: &str, child: &str) -> Vec<Logged> {
        self.with_message(message)
            .into_iter()
            .filter(|e| {
                e.get("child") == Some(child)
                    || e.get("path")
                        .is_some_and(|p| p.ends_with(&format!("/{child}")))
            })
            .collect()
    }
}

struct Fields<'a>(&'a mut Logged);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        self.put(field, text);
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.to_string());
    }
}

impl Fields<'_> {
    fn put(&mut self, field: &Field, text: String) {
        if field.name() == "message" {
            self.0.message = text;
        } else {
            self.0.fields.push((field.name().to_string(), text));
        }
    }
}

impl<S: tracing::Subscriber> Layer<S> for Capture {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let mut logged = Logged::default();
        event.record(&mut Fields(&mut logged));
        self.0.lock().push(logged);
    }
}
