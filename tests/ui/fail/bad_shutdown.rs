#[derive(Default, canopy::Child)]
#[child(shutdown = drain(2), kind = manager, backoff(min = "1s"))]
struct Worker;

impl canopy::ractor::Actor for Worker {
    type Msg = ();
    type State = ();
    type Arguments = ();
    async fn pre_start(
        &self,
        _: canopy::ractor::ActorRef<()>,
        _: (),
    ) -> Result<(), canopy::ractor::ActorProcessingErr> {
        Ok(())
    }
}

fn main() {}
