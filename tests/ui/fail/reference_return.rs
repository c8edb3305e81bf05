struct Store {
    name: String,
}

#[canopy::service]
impl Store {
    fn init() -> Self {
        Store {
            name: String::new(),
        }
    }

    fn name(&self) -> &String {
        &self.name
    }
}

fn main() {}
