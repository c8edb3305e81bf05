// A child that takes arguments and is left out of the arguments struct is a type error.
struct Db;

#[canopy::service]
impl Db {
    fn init(_url: String) -> Self {
        Db
    }
}

struct Listener;

#[canopy::service]
impl Listener {
    fn init(_port: u16) -> Self {
        Listener
    }
}

#[derive(canopy::Supervisor)]
struct Web {
    db: Db,
    listener: Listener,
}

fn main() {
    let _ = Web::spec(WebArgs {
        db: "postgres://".into(),
    });
}
