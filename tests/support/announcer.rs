//! A worker for tests that need each incarnation's address: it sends itself to the test when it
//! starts, and fails on any message, so the test can crash it and wait for the next one.

use canopy::ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::mpsc;

/// Announces every incarnation on its channel; crashes ("boom") on any message.
#[derive(Clone)]
pub struct Worker(pub mpsc::UnboundedSender<ActorRef<()>>);

impl Actor for Worker {
    type Msg = ();
    type State = ();
    type Arguments = ();
    async fn pre_start(&self, me: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
        let _ = self.0.send(me);
        Ok(())
    }
    async fn handle(&self, _: ActorRef<()>, _: (), _: &mut ()) -> Result<(), ActorProcessingErr> {
        Err("boom".into())
    }
}
