struct Counter;

#[canopy::service]
impl Counter {
    fn init() -> Self {
        Counter
    }

    #[on_stop]
    fn stopped(&mut self) -> bool {
        true
    }

    #[on_stop]
    fn stopped_again(&mut self, _reason: canopy::ExitReason) {}
}

fn main() {}
