struct Counter;

#[canopy::service(restrat = transient)]
impl Counter {
    fn init() -> Self {
        Counter
    }
}

#[derive(canopy::Supervisor)]
#[supervisor(stratgy = one_for_all)]
struct Tree {
    #[child(shutdwn = "1s")]
    counter: Counter,
}

fn main() {}
