struct Db;

#[canopy::service]
impl Db {
    fn init() -> Self {
        Db
    }
}

#[derive(canopy::Supervisor)]
struct App {
    primary: Db,
    #[child(id = "primary")]
    replica: Db,
}

fn main() {}
