#[derive(canopy::Supervisor)]
enum App {
    Web,
}

#[derive(canopy::Supervisor)]
struct Pair(u8, u8);

fn main() {}
