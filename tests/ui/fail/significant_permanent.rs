struct Task;

#[canopy::service(significant)]
impl Task {
    fn init() -> Self {
        Task
    }
}

#[derive(Default, canopy::Child)]
#[child(restart = permanent, significant)]
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
