struct Task;

// Permanent by default.
#[canopy::service]
impl Task {
    fn init() -> Self {
        Task
    }
}

#[derive(canopy::Supervisor)]
#[supervisor(auto_shutdown = any_significant)]
struct Batch {
    #[child(significant)]
    task: Task,
}

#[derive(canopy::Supervisor)]
struct NoAutoShutdown {
    #[child(significant, restart = transient)]
    task: Task,
}

fn main() {}
