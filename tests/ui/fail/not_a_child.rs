#[derive(canopy::Supervisor)]
struct App {
    name: String,
}

fn main() {}
